"""One experiment from a typed config: data, network, training and the full run record.

Callable without Hydra: `run_experiment(Config(lr=0.01), Path("some/dir"))`.
"""

import logging
from contextlib import closing
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from mnist_exp import model_card, record, summary
from mnist_exp.atomic import write_atomic
from mnist_exp.config import Config, validate
from mnist_exp.data import cache_dir, load_dataset, split
from mnist_exp.errors import UserError
from mnist_exp.interrupts import Interrupted, critical, graceful_interrupts
from mnist_exp.network import Weights, init_weights
from mnist_exp.plots import plot_curves
from mnist_exp.train import EpochMetrics, train

log = logging.getLogger(__name__)


def describe(cfg: Config) -> str:
    return (f"lr={cfg.lr:g} hidden_size={cfg.hidden_size} epochs={cfg.epochs} "
            f"train_samples={cfg.train_samples} test_samples={cfg.test_samples} seed={cfg.seed}")


def progress_line(m: EpochMetrics, epochs: int) -> str:
    width = len(str(epochs - 1))
    return (f"epoch {m.epoch:>{width}}/{epochs - 1}  train loss {m.train_loss:.4f} acc {m.train_accuracy:.3f}"
            f"  test loss {m.test_loss:.4f} acc {m.test_accuracy:.3f}  {m.seconds:.2f}s")


def run_experiment(cfg: Config, run_dir: Path, extra: Optional[Dict[str, Any]] = None,
                   resume: bool = False) -> Dict[str, Any]:
    """Train as `cfg` says and record everything in `run_dir`; returns the final summary.

    With `resume`, `run_dir` is a run stopped (or finished) earlier: it continues from its
    last checkpoint up to `cfg.epochs`, giving exactly the metrics of an uninterrupted run.
    Whatever stops the run, summary.json says so (status failed or interrupted, with the
    reason) before the exception goes on; `extra` is stored in it as given (e.g. job info).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    status = summary.SummaryWriter(cfg, run_dir, extra)
    if resume:
        status.resume_from(summary.load(run_dir))
    try:
        with graceful_interrupts():
            return _run(cfg, run_dir, status, resume)
    except KeyboardInterrupt as e:
        status.save("interrupted", f"interrupted by {e}" if isinstance(e, Interrupted) else "interrupted")
        e.run_dir = run_dir  # the CLI's message says what to resume
        raise
    except Exception as e:
        status.save("failed", str(e) if isinstance(e, UserError) else f"{e.__class__.__name__}: {e}")
        raise


def _run(cfg: Config, run_dir: Path, status: summary.SummaryWriter, resume: bool) -> Dict[str, Any]:
    validate(cfg)
    log.info("%s %s: %s", "resume" if resume else "run", run_dir, describe(cfg))
    dataset = load_dataset(cfg.data)
    status.data = {"dir": str(cache_dir(cfg.data)), "checksums": dataset.checksums}
    train_set = split(dataset.train_images, dataset.train_labels, cfg.train_samples)
    test_set = split(dataset.test_images, dataset.test_labels, cfg.test_samples)
    if resume:
        arrays, rng, start = record.load_checkpoint(run_dir / record.CHECKPOINT)
        weights = Weights(**arrays)
        metrics = record.MetricsWriter(run_dir, resume_rows=start)
        log.info("continuing after epoch %d of %d", start - 1, cfg.epochs - 1)
    else:
        rng = np.random.default_rng(cfg.seed)
        weights, start = init_weights(rng, cfg.hidden_size), 0
        metrics = record.MetricsWriter(run_dir)
    status.rows = metrics.rows
    status.save("running")
    state, reason = "completed", None
    with closing(metrics):
        for m in train(weights, train_set, test_set, cfg.lr, cfg.epochs, rng, start):
            with critical():  # a signal waits until the row and its checkpoint are both written
                metrics.append(m)
                record.save_checkpoint(run_dir / record.CHECKPOINT, vars(weights), rng, m.epoch + 1)
                status.save("running")
            log.info(progress_line(m, cfg.epochs))
            if not m.finite:
                state, reason = "diverged", f"loss is not finite at epoch {m.epoch} (lr={cfg.lr:g} too high?)"
                log.error("diverged: %s", reason)
                break
    with critical():
        record.save_weights(run_dir / record.WEIGHTS, weights)
        plot_curves(metrics.rows, f"MNIST MLP 784-{cfg.hidden_size}-10: {describe(cfg)}", run_dir / record.CURVES)
        result = status.save(state, reason)
        write_atomic(run_dir / record.MODEL_CARD, lambda tmp: tmp.write_text(model_card.render(result)))
    if result["best"]:
        log.info("%s: final test accuracy %.3f, best %.3f at epoch %d; record in %s", state,
                 result["final"]["test_accuracy"], result["best"]["test_accuracy"], result["best"]["epoch"], run_dir)
    return result
