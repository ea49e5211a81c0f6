"""Learning-curve figure of one run: the walkthrough's two panels, labelled and readable."""

from pathlib import Path
from typing import List

from mnist_exp.train import EpochMetrics


def plot_curves(rows: List[EpochMetrics], title: str, path: Path) -> None:
    """Loss and accuracy, train and test, against the epoch, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # files only: works with no display, on a cluster node too
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [r.epoch for r in rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for ax, key, label in ((ax_loss, "loss", "loss (mean squared error per sample)"),
                           (ax_acc, "accuracy", "accuracy")):
        ax.plot(epochs, [getattr(r, f"train_{key}") for r in rows], "o-", ms=3, label="train")
        ax.plot(epochs, [getattr(r, f"test_{key}") for r in rows], "s-", ms=3, label="test")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    ax_acc.set_ylim(0, 1)
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
