"""Evaluate a finished run's saved weights again: `python -m mnist_exp.evaluate RUN_DIR`.

Uses the run's own config (from summary.json) for the data; --test-samples changes how
many test images are used (up to 10000), e.g. to score a small run on the whole test set.
"""

import argparse
import sys
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from mnist_exp import record
from mnist_exp.summary import load_config
from mnist_exp.data import load_dataset, split
from mnist_exp.errors import UserError
from mnist_exp.model import restore


def evaluate_run(run_dir: Path, test_samples: Optional[int] = None) -> Tuple[float, float, int]:
    """(test loss, test accuracy, number of test images) of the weights saved in `run_dir`."""
    cfg = load_config(run_dir)
    n = test_samples or cfg.test_samples
    if not 1 <= n <= 10000:
        raise UserError(f"--test-samples={n} is out of range: it must be from 1 to 10000")
    model = restore(cfg, record.load_weights(run_dir / record.WEIGHTS), run_dir / record.WEIGHTS)
    dataset = load_dataset(cfg.data)
    loss, accuracy = model.evaluate(split(dataset.test_images, dataset.test_labels, n, dtype=np.dtype(cfg.dtype)))
    return loss, accuracy, n


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mnist_exp.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--test-samples", type=int, default=None, help="first N test images (default: the run's)")
    args = parser.parse_args(argv)
    try:
        loss, accuracy, n = evaluate_run(args.run_dir, args.test_samples)
    except UserError as e:
        print(f"mnist_exp.evaluate: error: {e}", file=sys.stderr)
        sys.exit(2)  # bad input, as the app
    print(f"test_loss={loss:.6f} test_accuracy={accuracy:.4f} test_samples={n}")


if __name__ == "__main__":
    main()
