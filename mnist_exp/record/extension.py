"""A completed run extended (resume=RUN epochs=N) is a new run: its directory starts from copies
of the parent's metrics and checkpoint, and the parent is only read."""

import shutil
from pathlib import Path

from mnist_exp.errors import UserError
from mnist_exp.files.atomic import write_atomic
from mnist_exp.files.reading import open_regular, why
from mnist_exp.record.names import CHECKPOINT, METRICS


EXTENSION_COPIES = (METRICS, CHECKPOINT)  # the checkpoint last: with it, the copy is whole


def copy_for_extension(parent: Path, run_dir: Path) -> None:
    """The completed run's metrics and checkpoint, copied (atomically, each) into the new run
    directory of its extension, which goes on from there; the parent is only read."""
    for name in EXTENSION_COPIES:
        source = parent / name
        try:
            original = open_regular(source)
        except OSError as e:  # the parent's file, not this run's: a bad record, not a write error
            raise UserError(f"{source}: cannot read it to extend the run ({why(e)})") from None
        def copy(tmp: Path) -> None:
            with open(tmp, "wb") as out:
                shutil.copyfileobj(original, out)

        with original:
            write_atomic(run_dir / name, copy)


def discard_extension(run_dir: Path) -> None:
    """An extension stopped before its first epoch ended: its copies go, as if it never began."""
    for name in reversed(EXTENSION_COPIES):
        (run_dir / name).unlink(missing_ok=True)
