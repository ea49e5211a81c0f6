"""weights.npz and checkpoint.npz as load_model, evaluate and resume read them: a damaged or
oversized file is refused in one line naming its arrays as the file names them, from the zip's
npy headers, before any array is inflated (record/arrays.py, nn/models.py)."""

import dataclasses
import json
import re
import tracemalloc
import zipfile

import numpy as np
import pytest

from helpers import data_config, make_files
from mnist_exp.analysis import evaluate
from mnist_exp.analysis.trained import load_model
from mnist_exp.config import Config
from mnist_exp.errors import UserError
from mnist_exp.runner.networks import build
from mnist_exp import record
from mnist_exp.runner import memory

CFG = dict(hidden_size=8, batch_size=4, loss="cross_entropy", relu_derivative="correct", biases=True, init="he",
           optimizer="adam", batch_norm=True, dtype="float32")
OLD = {"dense1/w": "w1", "dense1/b": "b1", "batchnorm1/gamma": "gamma1", "batchnorm1/beta": "beta1",
       "batchnorm1/mean": "mean1", "batchnorm1/var": "var1", "dense2/w": "w2", "dense2/b": "b2"}


def make_run(tmp_path, **overrides):
    cfg = Config(**{**CFG, **overrides}, data=data_config(make_files(), tmp_path / "data", ["http://127.0.0.1:9/"]))
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"config": dataclasses.asdict(cfg)}))
    return run, build(cfg, np.random.default_rng(0))


def checkpoint_arrays(model, early_stopping=False):
    """What a run's checkpoint holds after a step: weights, Adam's state (and early stopping's)."""
    arrays = model.arrays()
    state = {**arrays, "opt/t": np.array(1.0), **{f"opt/{m}/{k}": np.zeros_like(v) for k, v in arrays.items()
                                                  for m in "mv" if not k.endswith(("/mean", "/var"))}}
    if early_stopping:
        state.update({"es/best_loss": np.array(0.5), "es/best_epoch": np.array(0), "es/bad_epochs": np.array(0),
                      **{f"es/best/{k}": v for k, v in arrays.items()}})
    return state


def save_checkpoint(run, arrays):
    record.save_checkpoint(run / record.CHECKPOINT, record.Checkpoint.of(arrays, np.random.default_rng(0), 1))


def refusal(run) -> str:
    with pytest.raises(UserError) as e:
        load_model(run)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_a_checkpoint_loads_whole(tmp_path):
    run, model = make_run(tmp_path)
    save_checkpoint(run, checkpoint_arrays(model))
    assert load_model(run).predict(np.zeros((2, 784), np.uint8)).shape == (2,)


@pytest.mark.parametrize("file", [record.WEIGHTS, record.CHECKPOINT])
def test_a_file_holding_an_array_under_both_names_is_refused(file, tmp_path):
    run, model = make_run(tmp_path)
    arrays = checkpoint_arrays(model) if file == record.CHECKPOINT else model.arrays()
    arrays["w1"] = arrays["dense1/w"] + 1
    if file == record.CHECKPOINT:
        save_checkpoint(run, arrays)
    else:
        record.save_weights(run / file, arrays)
    assert refusal(run) == (f"{run / file}: holds both 'dense1/w' and 'w1', two copies of one array: "
                            "the file is damaged")


def test_a_checkpoint_without_its_optimiser_state_is_refused(tmp_path):
    run, model = make_run(tmp_path)
    save_checkpoint(run, {k: v for k, v in checkpoint_arrays(model).items() if not k.startswith("opt/") or k == "opt/t"})
    assert refusal(run).startswith(f"{run / record.CHECKPOINT}: lacks the optimiser's arrays opt/m/batchnorm1/beta, ")


def test_a_checkpoint_of_early_stopping_without_its_arrays_is_refused(tmp_path):
    run, model = make_run(tmp_path, early_stopping=2, val_samples=10)
    save_checkpoint(run, checkpoint_arrays(model))
    assert refusal(run) == (f"{run / record.CHECKPOINT}: lacks early stopping's arrays es/bad_epochs, "
                            "es/best_epoch, es/best_loss: the file is damaged")
    arrays = checkpoint_arrays(model, early_stopping=True)
    del arrays["es/best/dense2/b"]
    save_checkpoint(run, arrays)
    assert "lacks early stopping's arrays es/best/dense2/b" in refusal(run)


def test_messages_name_arrays_as_the_file_does(tmp_path):
    run, model = make_run(tmp_path)
    arrays = {OLD[k]: v for k, v in model.arrays().items()}
    arrays["gamma1"] = np.ones(3, np.float32)
    record.save_weights(run / record.WEIGHTS, arrays)
    assert refusal(run) == (f"{run / record.WEIGHTS}: array 'gamma1' is float32[3], "
                            "this run's model needs float32[8]")


def write_zeros_member(path, name, shape, dtype=np.float32):
    """A compressed npy member declaring `shape`, written in pieces: it inflates to prod(shape) zeros."""
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive, archive.open(f"{name}.npy", "w",
                                                                                  force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                                 "shape": shape})
        chunk = bytes(1 << 20)
        for _ in range(int(np.prod(shape)) * np.dtype(dtype).itemsize >> 20):
            f.write(chunk)


def test_an_oversized_array_is_refused_from_its_header_before_it_inflates(tmp_path):
    run, model = make_run(tmp_path)
    path = run / record.WEIGHTS
    record.save_weights(path, {k: v for k, v in model.arrays().items() if k != "dense1/w"})
    write_zeros_member(path, "dense1/w", (784, 64 * 1024))  # 200 MB of zeros
    tracemalloc.start()
    try:
        message = refusal(run)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert message == f"{path}: array 'dense1/w' is float32[784, 65536], this run's model needs float32[784, 8]"
    assert peak < 20 * 2**20


@pytest.mark.parametrize("member, message", [
    ("notes.txt", "holds 'notes.txt', which is not an array: the file is damaged"),
    ("pickled", "array 'pickled' holds Python objects (dtype object): refused, as loading it would run code"),
])
def test_foreign_members_are_refused(member, message, tmp_path):
    run, model = make_run(tmp_path)
    path = run / record.WEIGHTS
    record.save_weights(path, model.arrays())
    with zipfile.ZipFile(path, "a") as archive:
        if member.endswith(".txt"):
            archive.writestr(member, "hello")
        else:
            with archive.open(f"{member}.npy", "w") as f:
                np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    assert refusal(run) == f"{path}: {message}"


def test_a_record_asking_for_too_large_a_model_is_refused_before_it_is_built(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(memory, "machine_memory", lambda: 512 * 2**20)
    run, model = make_run(tmp_path)
    record.save_weights(run / record.WEIGHTS, model.arrays())
    summary = json.loads((run / "summary.json").read_text())
    summary["config"]["hidden_size"] = 50000  # 157 MB a copy of dense1/w: more than 512 MB in all
    (run / "summary.json").write_text(json.dumps(summary))
    assert refusal(run).startswith(f"{run / 'summary.json'}: this config needs at least ")
    with pytest.raises(SystemExit) as e:
        evaluate.main([str(run)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1
    assert err.startswith("mnist_exp.evaluate: error: ") and "more than this machine's 0.5 GiB" in err


@pytest.mark.parametrize("file, dropped, named", [
    (record.WEIGHTS, "gamma1", "lacks the arrays gamma1 of this run's model"),
    (record.WEIGHTS, "w2", "lacks the arrays w2 of this run's model"),
    (record.CHECKPOINT, "opt/m/gamma1", "lacks the optimiser's arrays opt/m/gamma1: the file is damaged"),
    (record.CHECKPOINT, "es/best/b2", "lacks early stopping's arrays es/best/b2: the file is damaged"),
])
def test_an_older_file_lacking_an_array_is_told_by_its_own_names(file, dropped, named, tmp_path):
    """A file that names its arrays w1, gamma1 (before the layers) lacking one: the message names
    it as that file would (gamma1), not by a name the file never held (batchnorm1/gamma)."""
    run, model = make_run(tmp_path, early_stopping=2, val_samples=10)
    arrays = model.arrays() if file == record.WEIGHTS else checkpoint_arrays(model, early_stopping=True)
    arrays = {re.sub(r"(?:dense|batchnorm)(\d+)/(\w+)$", r"\2\1", k): v for k, v in arrays.items()}
    del arrays[dropped]
    if file == record.CHECKPOINT:
        save_checkpoint(run, arrays)
    else:
        record.save_weights(run / file, arrays)
    assert refusal(run) == f"{run / file}: {named}"
