"""Per-class results of the weights a run keeps: the test confusion matrix and the mistakes.

confusion.csv holds counts, one row per true class (`true` column) and one column per
predicted class; summary.json gets each class's accuracy (recall) and count.
"""

import csv
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

DIGITS = [str(d) for d in range(10)]
CLASS_NAMES = {  # data.name -> label names; any other data set is labelled 0-9
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"],
}
MISTAKES_SHOWN = 36


def class_names(data_name: str) -> List[str]:
    return CLASS_NAMES.get(data_name, DIGITS)


def confusion(truth: np.ndarray, predicted: np.ndarray, classes: int = 10) -> np.ndarray:
    """(classes, classes) counts: row = true label, column = predicted label."""
    return np.bincount(truth * classes + predicted, minlength=classes * classes).reshape(classes, classes)


def summary(matrix: np.ndarray, names: List[str]) -> Dict[str, Dict[str, float]]:
    """Each class's accuracy (the share of its test images predicted right) and its count."""
    counts = matrix.sum(axis=1)
    accuracy = np.divide(np.diag(matrix), counts, out=np.full(len(counts), np.nan), where=counts > 0)
    return {"accuracy": {n: (None if np.isnan(a) else float(a)) for n, a in zip(names, accuracy)},
            "count": {n: int(c) for n, c in zip(names, counts)}}


def mistakes(pixels: np.ndarray, truth: np.ndarray, predicted: np.ndarray,
             limit: int = MISTAKES_SHOWN) -> Tuple[np.ndarray, List[int], List[int]]:
    """The first `limit` misclassified images (bytes), with their true and predicted labels."""
    wrong = np.flatnonzero(truth != predicted)[:limit]
    return np.asarray(pixels[wrong], dtype=np.uint8), truth[wrong].tolist(), predicted[wrong].tolist()


def write_csv(path: Path, matrix: np.ndarray, names: List[str]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true", *names])
        writer.writerows([name, *map(int, row)] for name, row in zip(names, matrix))
