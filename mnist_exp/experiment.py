"""One experiment from a typed config: data, network, training and the full run record.

Callable without Hydra: `run_experiment(Config(lr=0.01), Path("some/dir"))`.
"""

import logging
from contextlib import closing
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from mnist_exp import model_card, record, summary
from mnist_exp.atomic import write_atomic
from mnist_exp.config import OPTION_KEYS, Config, validate
from mnist_exp.data import cache_dir, load_dataset, split
from mnist_exp.errors import UserError
from mnist_exp.figure_process import FigureHelper
from mnist_exp.interrupts import Interrupted, critical, graceful_interrupts
from mnist_exp.model import build, restore
from mnist_exp.optim import lr_at
from mnist_exp.train import EarlyStopping, EpochMetrics, train

log = logging.getLogger(__name__)


def describe(cfg: Config) -> str:
    """The reference keys, then every option that differs from its default."""
    text = (f"lr={cfg.lr:g} hidden_size={cfg.hidden_size} epochs={cfg.epochs} "
            f"train_samples={cfg.train_samples} test_samples={cfg.test_samples} seed={cfg.seed}")
    defaults = Config()
    changed = [f"{k}={getattr(cfg, k)}" for k in OPTION_KEYS if getattr(cfg, k) != getattr(defaults, k)]
    return " ".join([text, *changed])


def progress_line(m: EpochMetrics, epochs: int) -> str:
    width = len(str(epochs - 1))
    val = f"  val loss {m.val_loss:.4f} acc {m.val_accuracy:.3f}" if m.val_loss is not None else ""
    return (f"epoch {m.epoch:>{width}}/{epochs - 1}  train loss {m.train_loss:.4f} acc {m.train_accuracy:.3f}{val}"
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
        with graceful_interrupts(), FigureHelper() as figure:
            return _run(cfg, run_dir, status, resume, figure)
    except KeyboardInterrupt as e:
        status.save("interrupted", f"interrupted by {e}" if isinstance(e, Interrupted) else "interrupted")
        e.run_dir = run_dir  # the CLI's message says what to resume
        raise
    except Exception as e:
        status.save("failed", str(e) if isinstance(e, UserError) else f"{e.__class__.__name__}: {e}")
        raise


def _run(cfg: Config, run_dir: Path, status: summary.SummaryWriter, resume: bool,
         figure: FigureHelper) -> Dict[str, Any]:
    validate(cfg)
    log.info("%s %s: %s", "resume" if resume else "run", run_dir, describe(cfg))
    dataset = load_dataset(cfg.data)
    status.data = {"dir": str(cache_dir(cfg.data)), "checksums": dataset.checksums}
    dtype = np.dtype(cfg.dtype)
    train_set = split(dataset.train_images, dataset.train_labels, cfg.train_samples, dtype=dtype)
    test_set = split(dataset.test_images, dataset.test_labels, cfg.test_samples, dtype=dtype)
    val_set = split(dataset.train_images, dataset.train_labels, cfg.val_samples, cfg.train_samples,
                    dtype) if cfg.val_samples else None
    stopper = EarlyStopping(cfg.early_stopping) if cfg.early_stopping else None
    if resume:
        saved, rng, start = record.load_checkpoint(run_dir / record.CHECKPOINT)
        model = restore(cfg, {k: v for k, v in saved.items() if not k.startswith("es/")})
        if stopper:
            stopper.load_state(saved)
        metrics = record.MetricsWriter(run_dir, bool(val_set), resume_rows=start)
        log.info("continuing after epoch %d of %d", start - 1, cfg.epochs - 1)
    else:
        rng = np.random.default_rng(cfg.seed)
        model, start = build(cfg, rng), 0
        metrics = record.MetricsWriter(run_dir, bool(val_set))
    status.rows = metrics.rows
    status.save("running")

    def lr_of_epoch(epoch: int) -> float:
        return lr_at(epoch, cfg.lr, cfg.lr_schedule, cfg.epochs, cfg.lr_step, cfg.lr_decay)

    state, reason = "completed", None
    with closing(metrics):
        for m in train(model, train_set, test_set, lr_of_epoch, cfg.epochs, rng, start, val_set, stopper):
            with critical():  # a signal waits until the row and its checkpoint are both written
                metrics.append(m)
                arrays = {**model.state(), **(stopper.state() if stopper else {})}
                record.save_checkpoint(run_dir / record.CHECKPOINT, arrays, rng, m.epoch + 1)
                status.save("running")
            log.info(progress_line(m, cfg.epochs))
            if not m.finite:
                state, reason = "diverged", f"loss is not finite at epoch {m.epoch} (lr={cfg.lr:g} too high?)"
                log.error("diverged: %s", reason)
                break
    if stopper:
        stopper.restore_best(model)
        restored = next((asdict(m) for m in metrics.rows if m.epoch == stopper.best_epoch), None)
        status.extra["early_stopping"] = {"best_epoch": stopper.best_epoch, "best_val_loss": stopper.best_loss,
                                          "stopped_early": stopper.stop, "restored_best_weights": True,
                                          "restored_metrics": restored}  # what weights.npz scores
        log.info("early stopping: best validation loss %.4f at epoch %d%s; its weights restored", stopper.best_loss,
                 stopper.best_epoch, f", stopped after epoch {metrics.rows[-1].epoch}" if stopper.stop else "")
    with critical():
        record.save_weights(run_dir / record.WEIGHTS, model.arrays())
        figure.draw(metrics.rows, f"MNIST MLP {architecture(cfg)}: {describe(cfg)}", run_dir / record.CURVES)
        result = status.save(state, reason)
        write_atomic(run_dir / record.MODEL_CARD, lambda tmp: tmp.write_text(model_card.render(result)))
    if result["best"]:
        log.info("%s: final test accuracy %.3f, best %.3f at epoch %d; record in %s", state,
                 result["final"]["test_accuracy"], result["best"]["test_accuracy"], result["best"]["epoch"], run_dir)
    return result


def architecture(cfg: Config) -> str:
    return "-".join(map(str, [784] + [cfg.hidden_size] * cfg.hidden_layers + [10]))
