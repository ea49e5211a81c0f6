"""checkpoint.npz: everything needed to continue a run exactly (the model's, optimiser's and
early stopping's arrays, the generator's state, the epochs done), replaced atomically."""

import json
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from mnist_exp.errors import UserError
from mnist_exp.files.atomic import write_atomic
from mnist_exp.record.arrays import MAX_TEXT, Check, load_arrays, read_specs


def save_checkpoint(path: Path, arrays: Dict[str, np.ndarray], rng: np.random.Generator, epochs_done: int) -> None:
    """Everything needed to continue exactly: weights (and any optimiser arrays), generator state."""
    rng_state = np.array(json.dumps(rng.bit_generator.state))  # a plain string: no pickle needed

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays, rng_state=rng_state, epochs_done=np.array(epochs_done))

    write_atomic(path, write)


def load_checkpoint(path: Path, check: Optional[Check] = None) -> Tuple[Dict[str, np.ndarray], np.random.Generator, int]:
    """A checkpoint's arrays, generator and epoch count, each checked: a damaged or foreign file
    is refused with one line (`check` sees the arrays' headers before any is loaded)."""
    specs = read_specs(path, "the checkpoint")
    rng_spec, done_spec = specs.get("rng_state"), specs.get("epochs_done")
    if rng_spec is None or rng_spec.shape != () or rng_spec.dtype.kind != "U" or rng_spec.dtype.itemsize > 4 * MAX_TEXT:
        raise UserError(f"{path}: cannot load the checkpoint (its 'rng_state' is missing or not a generator state)")
    if done_spec is None or done_spec.shape != () or done_spec.dtype.kind not in "iu":
        raise UserError(f"{path}: the checkpoint's epoch count ('epochs_done') is missing or not a number")
    arrays = load_arrays(path, "the checkpoint", check, ("rng_state", "epochs_done"))
    try:
        state = json.loads(str(arrays.pop("rng_state")))
        done = arrays.pop("epochs_done")
        rng = np.random.default_rng()
        rng.bit_generator.state = state
    except Exception as e:  # JSON and generator errors alike: a file we cannot use
        raise UserError(f"{path}: cannot load the checkpoint ({e.__class__.__name__}: {e})") from None
    if int(done) < 1:
        raise UserError(f"{path}: the checkpoint's epoch count ({done!r}) is not a number of finished epochs")
    return arrays, rng, int(done)
