"""One experiment from a typed config: data, network, training and the full run record.

Callable without Hydra: `run_experiment(Config(lr=0.01), Path("some/dir"))`.
"""

import logging
import time
from pathlib import Path
from typing import Any, Dict

import numpy as np

from mnist_exp import model_card, record, summary
from mnist_exp.config import Config, validate
from mnist_exp.data import cache_dir, load_dataset, split
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


def run_experiment(cfg: Config, run_dir: Path) -> Dict[str, Any]:
    """Train as `cfg` says and record everything in `run_dir`; returns the final summary."""
    validate(cfg)
    started = time.time()
    run_dir.mkdir(parents=True, exist_ok=True)
    log.info("run %s: %s", run_dir, describe(cfg))
    dataset = load_dataset(cfg.data)
    train_set = split(dataset.train_images, dataset.train_labels, cfg.train_samples)
    test_set = split(dataset.test_images, dataset.test_labels, cfg.test_samples)
    rng = np.random.default_rng(cfg.seed)
    weights = init_weights(rng, cfg.hidden_size)

    metrics = record.MetricsWriter(run_dir)
    info = dict(cfg=cfg, run_dir=run_dir, started=started, checksums=dataset.checksums,
                data_dir=cache_dir(cfg.data))

    def save(status: str, reason: str = None) -> Dict[str, Any]:
        result = summary.build(status=status, rows=metrics.rows, reason=reason, **info)
        record.save_json(run_dir / record.SUMMARY, result)
        return result

    save("running")
    status, reason = "completed", None
    try:
        for m in train(weights, train_set, test_set, cfg.lr, cfg.epochs, rng):
            metrics.append(m)
            log.info(progress_line(m, cfg.epochs))
            if not m.finite:
                status, reason = "diverged", f"loss is not finite at epoch {m.epoch} (lr={cfg.lr:g} too high?)"
                log.error("diverged: %s", reason)
                break
    except KeyboardInterrupt:
        save("interrupted", "interrupted by the user")
        raise
    except Exception as e:
        save("failed", f"{e.__class__.__name__}: {e}")
        raise
    finally:
        metrics.close()
    record.save_weights(run_dir / record.WEIGHTS, weights)
    plot_curves(metrics.rows, f"MNIST MLP 784-{cfg.hidden_size}-10: {describe(cfg)}", run_dir / record.CURVES)
    result = save(status, reason)
    (run_dir / record.MODEL_CARD).write_text(model_card.render(result))
    if result["best"]:
        log.info("%s: final test accuracy %.3f, best %.3f at epoch %d; record in %s", status,
                 result["final"]["test_accuracy"], result["best"]["test_accuracy"], result["best"]["epoch"], run_dir)
    return result
