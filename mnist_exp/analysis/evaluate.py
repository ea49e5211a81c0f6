"""Evaluate a run's saved model again: `python -m mnist_exp.evaluate RUN_DIR`.

Uses the run's own config (from summary.json) for the data, and the model `load_model` gives
(weights.npz, or the last checkpoint of an interrupted run); --test-samples changes how many
test images are used (1 to 10000), e.g. to score a small run on the whole test set. Prints
the loss and accuracy, then each class's accuracy.

The data is read where this user keeps it, not where the record says (a moved or foreign
record's folders may not exist, or be someone else's): --data-dir, else MNIST_EXP_DATA_DIR,
else the run's data.dir if it exists, else the per-user cache. Nothing is created and nothing
downloaded unless --download asks for the record's mirrors; the record's checksums decide
whether the files are the run's data.
"""

import argparse
import os
import sys
from pathlib import Path
from dataclasses import replace
from typing import Dict, Optional, Union

import numpy as np

from mnist_exp.analysis import liveness
from mnist_exp.runner import per_class
from mnist_exp.config import DataConfig
from mnist_exp.data import idx
from mnist_exp.data.datasets import ROLES, load_dataset, split, user_cache
from mnist_exp.errors import DataError, UserError
from mnist_exp.analysis.trained import load_model

CACHE = "the per-user cache"


def evaluate_run(run_dir: Path, test_samples: Optional[int] = None, data_dir: Union[str, Path, None] = None,
                 download: bool = False) -> Dict:
    """Test loss, accuracy, image count, confusion matrix and per-class accuracy of the model
    `run_dir` keeps, and which file it came from. The data is read from `data_dir`, else as the
    module's docstring says; `download` lets the record's mirrors fill in missing files."""
    trained = load_model(run_dir)
    cfg = trained.config
    n = cfg.test_samples if test_samples is None else test_samples
    if not 1 <= n <= 10000:
        raise UserError(f"--test-samples {n} is out of range: it must be from 1 to 10000")
    dataset = load_dataset(local_data(cfg.data, data_dir, download))
    test_set = split(dataset.test_images, dataset.test_labels, n, dtype=np.dtype(cfg.dtype))
    loss, accuracy = trained.model.evaluate(test_set)
    names = per_class.class_names(cfg.data.name)
    matrix = per_class.confusion(test_set.y.argmax(axis=1), trained.predict(test_set.pixels), len(names))
    return {"test_loss": loss, "test_accuracy": accuracy, "test_samples": n, "confusion": matrix,
            "per_class": per_class.summary(matrix, names)["accuracy"], "source": trained.source,
            "epoch": trained.epoch}


def local_data(recorded: DataConfig, data_dir: Union[str, Path, None], download: bool) -> DataConfig:
    """The record's data set (its files and checksums) read from this user's directory: no
    mirrors unless `download`, and never a directory the record names that does not exist."""
    directory, what = data_directory(recorded, data_dir)
    if not directory.is_dir() and what != CACHE:
        raise UserError(f"{what} {directory}: no such directory")
    data = replace(recorded, dir=str(directory), mirrors=list(recorded.mirrors) if download else [])
    if not download:  # checked here: the loader would try to download a missing or other file
        _check_files(data, directory, what)
    return data


def _check_files(data: DataConfig, directory: Path, what: str) -> None:
    """Each of the run's files is in `directory` (or a fallback dir) with the run's checksum."""
    missing = []
    for spec in (getattr(data, role) for role in ROLES):
        found = next((d / n for d in map(Path, [directory, *data.fallback_dirs])
                      for n in (spec.name, f"{spec.name}.gz") if (d / n).is_file()), None)
        if found is None:
            missing.append(spec.name)
        elif idx.md5(idx.read_bytes(found)) != spec.md5:
            raise DataError(f"{found}: its MD5 is not the {spec.md5} the run recorded: it is not the data the run "
                            "used; point --data-dir at the run's data")
    if missing:
        raise DataError(f"{', '.join(missing)}: not in {directory} ({what}); point --data-dir (or "
                        "MNIST_EXP_DATA_DIR) at the run's data, or add --download to fetch it from the run's mirrors")


def data_directory(recorded: DataConfig, data_dir: Union[str, Path, None]):
    """Where to read the data from, and what named it (for messages)."""
    if data_dir:
        return Path(data_dir).expanduser().absolute(), "--data-dir"
    if recorded.name == "mnist" and os.environ.get("MNIST_EXP_DATA_DIR"):
        return Path(os.environ["MNIST_EXP_DATA_DIR"]).expanduser().absolute(), "MNIST_EXP_DATA_DIR"
    if recorded.dir and Path(recorded.dir).is_dir():
        return Path(recorded.dir), "the run's data.dir"
    return user_cache() / recorded.name, CACHE


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mnist_exp.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--test-samples", type=int, default=None, help="first N test images (default: the run's)")
    parser.add_argument("--data-dir", type=Path, help="the directory holding the run's data (default: "
                        "MNIST_EXP_DATA_DIR, else the run's data.dir if it exists, else the per-user cache)")
    parser.add_argument("--download", action="store_true", help="fetch missing data files from the run's mirrors")
    args = parser.parse_args(argv)
    try:
        result = evaluate_run(args.run_dir, args.test_samples, args.data_dir, args.download)
    except UserError as e:
        print(f"mnist_exp.evaluate: error: {e}", file=sys.stderr)
        sys.exit(2)  # bad input, as the app
    if result["epoch"] is not None:
        holder = liveness.owner(args.run_dir)
        state = f"it is still running, {holder}" if holder else "it was interrupted"
        print(f"note: the run has no weights.npz ({state}): scoring {result['source'].name}, "
              f"the weights after epoch {result['epoch']}", file=sys.stderr)
    print(f"test_loss={result['test_loss']:.6f} test_accuracy={result['test_accuracy']:.4f} "
          f"test_samples={result['test_samples']}")
    print("per class: " + "  ".join(f"{name}={'n/a' if a is None else f'{a:.4f}'}"
                                     for name, a in result["per_class"].items()))


if __name__ == "__main__":
    main()
