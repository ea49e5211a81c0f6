"""Matplotlib figures made and saved the one way the package allows: a bare Figure (no pyplot,
so no GUI backend and no global state), and a PNG written atomically."""

import os
from pathlib import Path
from typing import BinaryIO, Union

from mnist_exp.files.atomic import write_atomic


def new_figure(layout="constrained", **kwargs):
    """A bare Figure: no pyplot, so no GUI backend, no global state, a faster import."""
    from matplotlib.figure import Figure

    return Figure(layout=layout, **kwargs)


def save(fig, path: Union[Path, str, BinaryIO], dpi: int = 110) -> None:
    """Save a figure; to a path atomically (temp file beside it, fsync, rename), so a run or
    sweep killed while it draws leaves the old file or none, never a truncated one."""
    if not isinstance(path, (str, os.PathLike)):
        fig.savefig(path, format="png", dpi=dpi)  # a file object: the caller owns it
        return
    path = Path(path)
    from matplotlib import rcParams

    fmt = path.suffix.lstrip(".").lower() or rcParams["savefig.format"]  # as savefig infers it from the name

    def write(target: Path) -> None:
        fig.savefig(target, format=fmt, dpi=dpi)

    write_atomic(path, write)
