"""checkpoint.npz: everything needed to continue a run exactly (the model's, optimiser's and
early stopping's arrays, the generator's state, the epochs done), replaced atomically."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from mnist_exp.errors import UserError
from mnist_exp.files.atomic import write_atomic
from mnist_exp.record.arrays import MAX_TEXT, Check, load_arrays, read_specs


Arrays = Dict[str, np.ndarray]
OPTIMIZER, EARLY_STOPPING = "opt/", "es/"  # the file's prefixes of the optimiser's and early stopping's arrays


@dataclass
class Checkpoint:
    """A run after `epochs_done` epochs: the network's arrays, its optimiser's state ("t",
    "m/dense1/w"...), early stopping's ("best_loss", "best/dense1/w"...; empty without it) and
    the generator's. The file keeps them in one archive, the latter two under their prefixes."""
    model: Arrays
    optimizer: Arrays
    early_stopping: Arrays
    rng: np.random.Generator
    epochs_done: int

    def arrays(self) -> Arrays:
        """The archive's arrays, in the file's order and names."""
        return {**self.model, **{OPTIMIZER + k: v for k, v in self.optimizer.items()},
                **{EARLY_STOPPING + k: v for k, v in self.early_stopping.items()}}

    @classmethod
    def of(cls, arrays: Arrays, rng: np.random.Generator, epochs_done: int) -> "Checkpoint":
        """A checkpoint from an archive's arrays, told apart by their prefixes."""
        parts: Dict[str, Arrays] = {"": {}, OPTIMIZER: {}, EARLY_STOPPING: {}}
        for name, array in arrays.items():
            prefix = next((p for p in (OPTIMIZER, EARLY_STOPPING) if name.startswith(p)), "")
            parts[prefix][name[len(prefix):]] = array
        return cls(parts[""], parts[OPTIMIZER], parts[EARLY_STOPPING], rng, epochs_done)


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Everything needed to continue exactly, replaced atomically."""
    rng_state = np.array(json.dumps(checkpoint.rng.bit_generator.state))  # a plain string: no pickle needed

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **checkpoint.arrays(), rng_state=rng_state, epochs_done=np.array(checkpoint.epochs_done))

    write_atomic(path, write)


def load_checkpoint(path: Path, check: Optional[Check] = None) -> Checkpoint:
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
    return Checkpoint.of(arrays, rng, int(done))
