"""weights.npz and the arrays of checkpoint.npz: plain NumPy arrays, never pickles, each file's
members checked from their npy headers before any is inflated, and names of files written
before the layers ("w1") read under today's ("dense1/w")."""

import re
import zipfile
from pathlib import Path
from typing import Callable, Dict, NamedTuple, Optional, Tuple

import numpy as np

from mnist_exp.errors import UserError
from mnist_exp.files.atomic import write_atomic
from mnist_exp.files.reading import open_regular
from mnist_exp.nn.stack import current_names


class Spec(NamedTuple):
    """An array as its npy header declares it, read without inflating the array."""
    shape: tuple
    dtype: np.dtype


Check = Callable[[Dict[str, Spec], Dict[str, str]], None]  # (specs by today's name, today's -> file's names)
MAX_TEXT = 1 << 16  # the generator's state is ~200 characters


def read_specs(path: Path, what: str) -> Dict[str, Spec]:
    """Each member's name, shape and dtype from its npy header alone: a file's arrays are
    checked before any is inflated (a small zip of zeros can hold gigabytes)."""
    specs = {}
    try:
        with open_regular(path) as file, zipfile.ZipFile(file) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    raise UserError(f"{path}: holds '{info.filename}', which is not an array: the file is damaged")
                name = info.filename[:-4]
                with archive.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read = {(1, 0): np.lib.format.read_array_header_1_0,
                            (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                    if read is None:
                        raise ValueError(f"npy format version {version} of '{name}' is not one this project writes")
                    shape, _, dtype = read(f)
                if dtype.hasobject:
                    raise UserError(f"{path}: array '{name}' holds Python objects (dtype object): refused, "
                                    "as loading it would run code")
                specs[name] = Spec(tuple(shape), dtype)
    except UserError:
        raise
    except OSError as e:  # not a regular file (a FIFO, a directory), a link loop, no permission
        raise UserError(f"{path}: cannot read {what}: {e.strerror or e}") from None
    except Exception as e:  # truncated, empty, not a zip, a damaged header...
        raise UserError(f"{path}: cannot load {what} ({e.__class__.__name__}: {e})") from None
    return specs


TODAYS_NAME = re.compile(r"(?P<prefix>(?:opt/[mv]/|es/best/)?)(?:dense|batchnorm)(?P<layer>\d+)/(?P<array>\w+)")


class FileNames(dict):
    """Today's name -> the file's. An array the file lacks is named as the file would name it:
    in a file from before the layers, 'gamma1', not 'batchnorm1/gamma', which it never held."""

    def get(self, key, default=None):
        if key in self or not any(k != v for k, v in self.items()):
            return super().get(key, default)
        return TODAYS_NAME.sub(r"\g<prefix>\g<array>\g<layer>", key)


def renamed(specs: Dict[str, Spec], path: Path) -> Dict[str, str]:
    """Today's name -> the file's, refusing a file holding one array under both names."""
    names: Dict[str, str] = FileNames()
    for original in specs:
        current = next(iter(current_names({original: None})))
        if current in names:
            first, second = sorted((names[current], original), key=lambda n: n != current)
            raise UserError(f"{path}: holds both '{first}' and '{second}', two copies of one array: the file is damaged")
        names[current] = original
    return names


def load_arrays(path: Path, what: str, check: Optional[Check], extra: Tuple[str, ...] = ()) -> Dict[str, np.ndarray]:
    """The arrays of `path` under today's names (its `extra` ones as they are), after `check`
    has seen their headers."""
    specs = read_specs(path, what)
    names = renamed({k: v for k, v in specs.items() if k not in extra}, path)
    if check is not None:
        check({current: specs[original] for current, original in names.items()}, names)
    try:
        with open_regular(path) as file, np.load(file, allow_pickle=False) as saved:
            arrays = {current: saved[original] for current, original in names.items()}
            arrays.update({k: saved[k] for k in extra if k in specs})
    except Exception as e:
        raise UserError(f"{path}: cannot load {what} ({e.__class__.__name__}: {e})") from None
    return arrays


def save_weights(path: Path, arrays: Dict[str, np.ndarray]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    write_atomic(path, write)


def load_weights(path: Path, check: Optional[Check] = None) -> Dict[str, np.ndarray]:
    """Weights saved by a run, named by layer (older files' "w1"... renamed); plain arrays
    only, so no pickle is ever loaded; `check` sees their headers before any is loaded."""
    return load_arrays(path, "weights", check)
