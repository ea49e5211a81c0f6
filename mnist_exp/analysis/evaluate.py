"""Evaluate a run's saved model again: `python -m mnist_exp.evaluate RUN_DIR`.

Uses the run's own config (from summary.json) for the data, and the model `load_model` gives
(weights.npz, or the last checkpoint of an interrupted run); --test-samples changes how many
test images are used (1 to 10000), e.g. to score a small run on the whole test set. Prints
the loss and accuracy, then each class's accuracy.
"""

import argparse
import sys
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from mnist_exp.runner import per_class
from mnist_exp.data.datasets import load_dataset, split
from mnist_exp.errors import UserError
from mnist_exp.analysis.trained import load_model


def evaluate_run(run_dir: Path, test_samples: Optional[int] = None) -> Dict:
    """Test loss, accuracy, image count, confusion matrix and per-class accuracy of the model
    `run_dir` keeps, and which file it came from."""
    trained = load_model(run_dir)
    cfg = trained.config
    n = cfg.test_samples if test_samples is None else test_samples
    if not 1 <= n <= 10000:
        raise UserError(f"--test-samples {n} is out of range: it must be from 1 to 10000")
    dataset = load_dataset(cfg.data)
    test_set = split(dataset.test_images, dataset.test_labels, n, dtype=np.dtype(cfg.dtype))
    loss, accuracy = trained.model.evaluate(test_set)
    names = per_class.class_names(cfg.data.name)
    matrix = per_class.confusion(test_set.y.argmax(axis=1), trained.predict(test_set.pixels), len(names))
    return {"test_loss": loss, "test_accuracy": accuracy, "test_samples": n, "confusion": matrix,
            "per_class": per_class.summary(matrix, names)["accuracy"], "source": trained.source,
            "epoch": trained.epoch}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mnist_exp.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--test-samples", type=int, default=None, help="first N test images (default: the run's)")
    args = parser.parse_args(argv)
    try:
        result = evaluate_run(args.run_dir, args.test_samples)
    except UserError as e:
        print(f"mnist_exp.evaluate: error: {e}", file=sys.stderr)
        sys.exit(2)  # bad input, as the app
    if result["epoch"] is not None:
        print(f"note: the run has no weights.npz (it was interrupted): scoring {result['source'].name}, "
              f"the weights after epoch {result['epoch']}", file=sys.stderr)
    print(f"test_loss={result['test_loss']:.6f} test_accuracy={result['test_accuracy']:.4f} "
          f"test_samples={result['test_samples']}")
    print("per class: " + "  ".join(f"{name}={'n/a' if a is None else f'{a:.4f}'}"
                                     for name, a in result["per_class"].items()))


if __name__ == "__main__":
    main()
