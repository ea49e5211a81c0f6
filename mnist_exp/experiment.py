"""One experiment from a typed config: data, network, training and the full run record.

Callable without Hydra: `run_experiment(Config(lr=0.01), Path("some/dir"))`.
"""

import logging
from contextlib import closing
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from mnist_exp import model_card, record, summary
from mnist_exp.config import Config, validate
from mnist_exp.data import cache_dir, load_dataset, split
from mnist_exp.errors import UserError
from mnist_exp.network import init_weights
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


def run_experiment(cfg: Config, run_dir: Path, extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Train as `cfg` says and record everything in `run_dir`; returns the final summary.

    Whatever stops the run, summary.json says so (status failed or interrupted, with the
    reason) before the exception goes on; `extra` is stored in it as given (e.g. job info).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    status = summary.SummaryWriter(cfg, run_dir, extra)
    try:
        return _run(cfg, run_dir, status)
    except KeyboardInterrupt:
        status.save("interrupted", "interrupted by the user")
        raise
    except Exception as e:
        status.save("failed", str(e) if isinstance(e, UserError) else f"{e.__class__.__name__}: {e}")
        raise


def _run(cfg: Config, run_dir: Path, status: summary.SummaryWriter) -> Dict[str, Any]:
    validate(cfg)
    log.info("run %s: %s", run_dir, describe(cfg))
    dataset = load_dataset(cfg.data)
    status.data = {"dir": str(cache_dir(cfg.data)), "checksums": dataset.checksums}
    train_set = split(dataset.train_images, dataset.train_labels, cfg.train_samples)
    test_set = split(dataset.test_images, dataset.test_labels, cfg.test_samples)
    rng = np.random.default_rng(cfg.seed)
    weights = init_weights(rng, cfg.hidden_size)

    metrics = record.MetricsWriter(run_dir)
    status.rows = metrics.rows
    status.save("running")
    state, reason = "completed", None
    with closing(metrics):
        for m in train(weights, train_set, test_set, cfg.lr, cfg.epochs, rng):
            metrics.append(m)
            log.info(progress_line(m, cfg.epochs))
            if not m.finite:
                state, reason = "diverged", f"loss is not finite at epoch {m.epoch} (lr={cfg.lr:g} too high?)"
                log.error("diverged: %s", reason)
                break
    record.save_weights(run_dir / record.WEIGHTS, weights)
    plot_curves(metrics.rows, f"MNIST MLP 784-{cfg.hidden_size}-10: {describe(cfg)}", run_dir / record.CURVES)
    result = status.save(state, reason)
    (run_dir / record.MODEL_CARD).write_text(model_card.render(result))
    if result["best"]:
        log.info("%s: final test accuracy %.3f, best %.3f at epoch %d; record in %s", state,
                 result["final"]["test_accuracy"], result["best"]["test_accuracy"], result["best"]["epoch"], run_dir)
    return result
