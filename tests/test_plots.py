"""Figures a user would not squint at: the drawn Figure objects checked, not pixels."""

import math

import numpy as np
import pandas as pd
import pytest

from mnist_exp.analysis import sweep_figures
from mnist_exp.runner import plots
from mnist_exp.record.metrics import EpochMetrics

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
LONG_TITLE = ("a-rather-long-run-name: MNIST MLP 784-100-100-10, lr=0.005 hidden_size=100 epochs=20 "
              "train_samples=60000 test_samples=10000 seed=884736743 batch_size=128 optimizer=adam dropout=0.5")


def rows(n: int, diverge_at: int = None):
    out = []
    for e in range(n):
        bad = diverge_at is not None and e >= diverge_at
        out.append(EpochMetrics(e, math.nan if bad else 1.0 / (e + 1), 0.5 + 0.02 * e, math.nan if bad else 0.9 / (e + 1),
                                0.55 + 0.02 * e, 0.1))
    return out


def drawn(fig):
    """The figure drawn by Agg, as savefig draws it, so text has its real size."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    return fig


def inside(fig, artist) -> bool:
    """Whether the artist's drawn box lies within the figure."""
    renderer = fig.canvas.get_renderer()
    box, page = artist.get_window_extent(renderer), fig.bbox
    return box.x0 >= page.x0 - 1 and box.x1 <= page.x1 + 1


def overlapping(labels, renderer) -> bool:
    boxes = [t.get_window_extent(renderer) for t in labels if t.get_visible() and t.get_text()]
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_a_one_epoch_run_is_not_a_lone_dot_on_a_unit_axis():
    fig = plots.curves_figure(rows(1), "one epoch")
    for ax in fig.axes:
        low, high = ax.get_xlim()
        assert high - low > 1.5
        assert sorted(t.get_text().split()[0] for t in ax.texts) == ["test", "train"]  # the values are written
    assert "test 0.55" in [t.get_text() for t in fig.axes[1].texts]


def test_a_diverged_run_is_marked_where_it_diverged():
    fig = plots.curves_figure(rows(5, diverge_at=3), "diverged")
    lines = [line for ax in fig.axes for line in ax.lines if "diverged" in str(line.get_label())]
    assert lines and all(line.get_xdata()[0] == 3 for line in lines)


@pytest.mark.parametrize("make", [
    lambda: plots.curves_figure(rows(3), LONG_TITLE),
    lambda: plots.misclassified_figure(np.zeros((3, 28, 28), np.uint8), [0, 1, 2], [1, 2, 0], FASHION, LONG_TITLE),
    lambda: plots.confusion_figure(np.eye(10, dtype=int) * 9 + 1, FASHION, LONG_TITLE)])
def test_titles_fit_the_figure(make):
    fig = drawn(make())
    titles = [t for t in fig.texts if t.get_text()] + [ax.title for ax in fig.axes if ax.get_title()]
    assert titles and all(inside(fig, t) for t in titles)


def test_long_class_names_do_not_collide_in_misclassified():
    images = np.zeros((36, 28, 28), np.uint8)
    truth, predicted = [k % 10 for k in range(36)], [(k + 3) % 10 for k in range(36)]
    fig = drawn(plots.misclassified_figure(images, truth, predicted, FASHION, "fashion"))
    assert not overlapping(fig.axes[0].texts, fig.canvas.get_renderer())


def test_off_diagonal_errors_are_visible_in_the_confusion_matrix():
    matrix = np.eye(10, dtype=int) * 95
    matrix[0, 1] = 5  # 5% of class 0 read as 1
    fig = plots.confusion_figure(matrix, [str(i) for i in range(10)], "errors")
    image = fig.axes[0].images[0]
    white = np.array(image.cmap(0.0)[:3])
    error = np.array(image.cmap(image.norm(0.05))[:3])
    assert np.abs(white - error).max() > 0.25  # a 5% error is not white


def test_log_axis_ticks_do_not_overlap_in_the_search_figure():
    lrs = [0.0012, 0.0015, 0.002, 0.0025, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.0095]  # under a decade
    table = pd.DataFrame({"job": range(len(lrs)), "lr": lrs, "hidden_size": [32 * (1 + i % 8) for i in range(len(lrs))],
                          "final_test_accuracy": np.linspace(0.8, 0.9, len(lrs)), "status": "completed"})
    fig = drawn(sweep_figures.search_figure(table, ["lr", "hidden_size"]))
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        labels = ax.get_xticklabels(which="both")
        assert not overlapping(labels, renderer), [t.get_text() for t in labels]
