"""A record is never overwritten or wiped: used directories are refused however they are named,
one process owns a run directory, and a resume that does not finish an epoch changes nothing."""

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import run_cli, start

SHORT = ["train_samples=300", "test_samples=100"]


def snapshot(directory: Path) -> dict:
    """Every file's bytes but the lock's, which names the last process that owned the directory."""
    return {p.relative_to(directory): p.read_bytes() for p in sorted(directory.rglob("*"))
            if p.is_file() and p.name != ".mnist_exp.lock"}


@pytest.fixture(scope="module")
def finished(mnist_dir, tmp_path_factory) -> Path:
    """A completed 2-epoch run, copied by tests that change it."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    result = run_cli([*SHORT, "epochs=2", f"hydra.run.dir={run_dir}"], cwd=run_dir.parent)
    assert result.returncode == 0, result.stderr
    return run_dir


def copy_of(run_dir: Path, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(run_dir, target)
    return target


@pytest.mark.parametrize("spelling", ["hydra.run.dir={d}", "++hydra.run.dir={d}", "hydra.run.dir=${{oc.env:RUN_D}}"])
def test_every_spelling_of_a_used_run_dir_is_refused_before_anything_is_written(spelling, finished, tmp_path):
    run_dir = copy_of(finished, tmp_path)
    before = snapshot(run_dir)
    result = run_cli([*SHORT, "epochs=1", spelling.format(d=run_dir)], cwd=tmp_path, env={"RUN_D": str(run_dir)})
    assert result.returncode == 2
    assert "already holds a run" in result.stderr and f"resume={run_dir}" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert snapshot(run_dir) == before


@pytest.mark.slow
def test_a_second_sweep_into_a_used_sweep_dir_is_refused(mnist_dir, tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = ["-m", "lr=0.005,0.01", *SHORT, "epochs=1", f"hydra.sweep.dir={sweep_dir}"]
    assert run_cli(args, cwd=tmp_path).returncode == 0
    before = snapshot(sweep_dir)
    again = run_cli(["-m", "lr=0.5,0.7", *SHORT, "epochs=1", f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path)
    assert again.returncode == 2 and "already holds a sweep" in again.stderr
    assert snapshot(sweep_dir) == before


def test_a_sweep_subdir_shared_by_its_jobs_is_refused(tmp_path):
    result = run_cli(["-m", "lr=0.005,0.01", f"hydra.sweep.dir={tmp_path / 's'}", "hydra.sweep.subdir=same"],
                     cwd=tmp_path)
    assert result.returncode == 2 and "hydra.sweep.subdir=same" in result.stderr
    assert not (tmp_path / "s").exists()


def wait_for_epoch(proc: subprocess.Popen, epoch: int) -> None:
    for line in proc.stdout:
        if line.split()[:2] == ["epoch", f"{epoch}/{line.split()[1].split('/')[-1]}"] if line.startswith("epoch") else False:
            return
    raise AssertionError(f"no epoch {epoch}: {proc.stderr.read()}")


@pytest.mark.slow
def test_two_runs_given_one_new_dir_at_once_one_is_refused_and_names_the_owner(mnist_dir, tmp_path):
    run_dir = tmp_path / "shared"
    first = start([*SHORT, "epochs=200", f"hydra.run.dir={run_dir}"], tmp_path)
    try:
        wait_for_epoch(first, 0)
        second = run_cli([*SHORT, "epochs=1", "lr=0.1", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
        assert second.returncode == 2
        assert f"pid {first.pid}" in second.stderr or "already holds a run" in second.stderr
        resume = run_cli([f"resume={run_dir}", "epochs=300"], cwd=tmp_path)
        assert resume.returncode == 2 and f"is in use by pid {first.pid}" in resume.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    config = (run_dir / ".hydra" / "config.yaml").read_text()
    assert "lr: 0.1" not in config
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = pd.read_csv(run_dir / "metrics.csv")
    assert summary["epochs_run"] == len(rows) and rows["epoch"].tolist() == list(range(len(rows)))


@pytest.mark.slow
def test_two_resumes_of_one_run_at_once_lose_no_epoch(finished, tmp_path):
    run_dir = copy_of(finished, tmp_path)
    first = start([f"resume={run_dir}", "epochs=400"], tmp_path)
    try:
        wait_for_epoch(first, 3)
        second = run_cli([f"resume={run_dir}", "epochs=12"], cwd=tmp_path)
        assert second.returncode == 2 and f"in use by pid {first.pid}" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    rows = pd.read_csv(run_dir / "metrics.csv")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs_run"] == len(rows) and rows["epoch"].tolist() == list(range(len(rows)))
    assert run_cli([f"resume={run_dir}", f"epochs={len(rows) + 1}"], cwd=tmp_path).returncode == 0


@pytest.mark.parametrize("case", ["epochs=0", "epochs=2 (already done)", "epochs=1 (fewer)", "data unavailable",
                                  "bad value"])
def test_a_resume_that_finishes_no_epoch_leaves_every_file_as_it_was(case, finished, tmp_path):
    run_dir = copy_of(finished, tmp_path)
    before = snapshot(run_dir)
    args = {"epochs=0": ["epochs=0"], "epochs=2 (already done)": [], "epochs=1 (fewer)": ["epochs=1"],
            "data unavailable": ["epochs=4", f"data.dir={tmp_path / 'empty'}", "data.mirrors=[http://127.0.0.1:9/]",
                                 "data.retries=1"],
            "bad value": ["epochs=4", "data.timeout=-1"]}[case]
    result = run_cli([f"resume={run_dir}", *args], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert snapshot(run_dir) == before
    if case != "bad value":
        assert "of 1" not in result.stderr


def test_ctrl_c_while_a_resume_loads_its_data_changes_nothing(finished, tmp_path, server):
    run_dir = copy_of(finished, tmp_path)
    before = snapshot(run_dir)
    server.httpd.stall_seconds = 30
    server.serve("", "train-images-idx3-ubyte.gz", b"", "stall")
    proc = start([f"resume={run_dir}", "epochs=4", f"data.dir={tmp_path / 'cold'}", f"data.mirrors=[{server.url}]"],
                 tmp_path)
    deadline = time.time() + 30
    while not server.requests and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert snapshot(run_dir) == before


def test_a_fresh_run_stopped_before_its_first_epoch_does_not_advise_resume(tmp_path, server):
    server.httpd.stall_seconds = 30
    server.serve("", "train-images-idx3-ubyte.gz", b"", "stall")
    proc = start([*SHORT, f"data.dir={tmp_path / 'cold'}", f"data.mirrors=[{server.url}]",
                  f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    deadline = time.time() + 30
    while not server.requests and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "resume=" not in stderr and "nothing to resume" in stderr


def test_resume_keeps_the_runs_data_set_and_refuses_another(finished, tmp_path):
    run_dir = copy_of(finished, tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["config"]["data"]["name"] = "other"  # as if the run had used another data set
    (run_dir / "summary.json").write_text(json.dumps(summary))
    before = snapshot(run_dir)
    result = run_cli([f"resume={run_dir}", "epochs=3", "data=mnist"], cwd=tmp_path)
    assert result.returncode == 2 and "the data cannot change when resuming" in result.stderr
    assert snapshot(run_dir) == before


@pytest.mark.slow
def test_resume_takes_a_new_location_of_the_same_files(finished, tmp_path, mnist_dir):
    import shutil

    run_dir = copy_of(finished, tmp_path)
    moved = tmp_path / "moved"
    shutil.copytree(mnist_dir, moved)
    extension = tmp_path / "extension"  # a completed run's extension is a run of its own
    result = run_cli([f"resume={run_dir}", "epochs=3", f"data.dir={moved}", f"hydra.run.dir={extension}"],
                     cwd=tmp_path, env={"MNIST_EXP_DATA_DIR": ""})
    assert result.returncode == 0, result.stderr
    assert json.loads((extension / "summary.json").read_text())["data"]["dir"] == str(moved)


def corrupt(run_dir: Path, how: str) -> None:
    ckpt, weights = run_dir / "checkpoint.npz", run_dir / "weights.npz"
    arrays = dict(np.load(ckpt))
    if how == "truncated checkpoint":
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
    elif how == "empty checkpoint":
        ckpt.write_bytes(b"")
    elif how == "negative epoch count":
        np.savez(ckpt, **{**arrays, "epochs_done": np.array(-3)})
    elif how == "impossible epoch count":
        np.savez(ckpt, **{**arrays, "epochs_done": np.array(10**6)})
    elif how == "wrong shape":
        np.savez(ckpt, **{**arrays, "dense1/w": arrays["dense1/w"][:, :7]})
    elif how == "wrong dtype":
        np.savez(ckpt, **{**arrays, "dense1/w": arrays["dense1/w"].astype(np.float32)})
    elif how == "a missing array":
        np.savez(ckpt, **{k: v for k, v in arrays.items() if k != "dense2/w"})
    elif how == "another network's array":
        np.savez(ckpt, **{**arrays, "batchnorm1/gamma": np.ones(100)})
    elif how == "a renamed .npy":
        np.save(run_dir / "x.npy", arrays["dense1/w"])
        (run_dir / "x.npy").rename(ckpt)
    elif how == "bad generator state":
        np.savez(ckpt, **{**arrays, "rng_state": np.array("{not json")})
    elif how == "summary config of wrong types":
        summary = json.loads((run_dir / "summary.json").read_text())
        summary["config"]["hidden_size"] = "many"
        (run_dir / "summary.json").write_text(json.dumps(summary))
    elif how in ("test_samples=-3", "data a string"):
        summary = json.loads((run_dir / "summary.json").read_text())
        summary["config"].update({"test_samples": -3} if how == "test_samples=-3" else {"data": "mnist"})
        (run_dir / "summary.json").write_text(json.dumps(summary))
    elif how == "huge metrics field":
        with open(run_dir / "metrics.csv", "a") as f:
            f.write("1," + "9" * 200_000 + "\n")
        lines = (run_dir / "metrics.csv").read_text().splitlines(keepends=True)
        (run_dir / "metrics.csv").write_text(lines[0] + lines[1] + lines[-1])
    elif how == "truncated weights":
        weights.write_bytes(weights.read_bytes()[:500])


CORRUPTIONS = ["truncated checkpoint", "empty checkpoint", "negative epoch count", "impossible epoch count",
               "wrong shape", "wrong dtype", "a missing array", "another network's array", "a renamed .npy",
               "bad generator state",
               "summary config of wrong types", "huge metrics field"]


@pytest.mark.parametrize("how", CORRUPTIONS)
def test_resume_of_a_damaged_record_is_one_line_and_changes_nothing(how, finished, tmp_path):
    run_dir = copy_of(finished, tmp_path)
    corrupt(run_dir, how)
    before = snapshot(run_dir)
    result = run_cli([f"resume={run_dir}", "epochs=4"], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert snapshot(run_dir) == before


@pytest.mark.parametrize("how", ["truncated weights", "summary config of wrong types", "test_samples=-3",
                                 "data a string"])
def test_evaluate_of_a_damaged_record_is_one_line_with_exit_2(how, finished, tmp_path):
    run_dir = copy_of(finished, tmp_path)
    corrupt(run_dir, how)
    result = run_cli([str(run_dir)], cwd=tmp_path, module="mnist_exp.evaluate")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    if how != "truncated weights":
        assert "summary.json: its config is not valid" in result.stderr and "--test-samples" not in result.stderr
        assert "mirror" not in result.stderr


@pytest.mark.slow
def test_a_resume_completes_a_record_whose_last_epoch_ended_but_whose_final_writes_did_not(finished, tmp_path):
    run_dir = copy_of(finished, tmp_path)
    (run_dir / "weights.npz").unlink()  # as if killed after the last checkpoint, before the final writes
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps({**summary, "status": "running"}))
    rows = (run_dir / "metrics.csv").read_bytes()
    result = run_cli([f"resume={run_dir}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    assert (run_dir / "weights.npz").is_file() and (run_dir / "metrics.csv").read_bytes() == rows


@pytest.mark.slow
def test_a_diverged_run_is_not_resumed(mnist_dir, tmp_path):
    run_dir = tmp_path / "run"
    assert run_cli([*SHORT, "epochs=2", "lr=100", f"hydra.run.dir={run_dir}"], cwd=tmp_path).returncode == 3
    before = snapshot(run_dir)
    result = run_cli([f"resume={run_dir}", "epochs=5"], cwd=tmp_path)
    assert result.returncode == 2 and "the run diverged" in result.stderr
    assert snapshot(run_dir) == before


def test_a_signal_during_the_final_writes_leaves_the_completed_record_alone(tmp_path, tiny_files, monkeypatch):
    """SIGTERM while the run writes its weights, figure and summary: the block finishes, and the
    record says completed everywhere (summary.json and model_card.md)."""
    from helpers import data_config
    from mnist_exp.config import Config
    from mnist_exp.runner.experiment import run_experiment
    from mnist_exp.runner.figure_process import FigureHelper
    from mnist_exp.runner.interrupts import Interrupted, RunStopped

    cache = tmp_path / "cache"
    cache.mkdir()
    for name, raw in tiny_files.values():
        (cache / name).write_bytes(raw)
    cfg = Config(train_samples=50, test_samples=20, epochs=2,
                 data=data_config(tiny_files, cache, ["http://127.0.0.1:9/"]))
    draw = FigureHelper.draw

    def draw_then_get_a_signal(self, *args):
        os.kill(os.getpid(), signal.SIGTERM)
        return draw(self, *args)

    monkeypatch.setattr(FigureHelper, "draw", draw_then_get_a_signal)
    with pytest.raises(RunStopped) as info:
        run_experiment(cfg, tmp_path / "run")
    assert info.value.ended and isinstance(info.value.cause, Interrupted)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "completed"
    assert "status: completed" in (tmp_path / "run" / "model_card.md").read_text()


def old_names(path: Path) -> None:
    """Rewrite a saved file with the names arrays had before the layers: w1, b1, gamma1, mean1..."""
    with np.load(path) as saved:
        arrays = {re.sub(r"(?:dense|batchnorm)(\d+)/(\w+)$", r"\2\1", k): saved[k] for k in saved.files}
    assert "w1" in arrays and not any("dense" in k or "batchnorm" in k for k in arrays)
    np.savez(path, **arrays)


@pytest.mark.slow
@pytest.mark.parametrize("options", [[], ["batch_size=32", "optimizer=adam", "batch_norm=true", "biases=true",
                                          "val_samples=100", "early_stopping=5"]])
def test_files_saved_before_the_layers_still_load_and_resume_to_the_same_numbers(options, mnist_dir, tmp_path):
    """weights.npz and checkpoint.npz named w1, b1, gamma1, mean1, opt/m/w1, es/best/w1 (before the
    layers) are read under today's names: the same predictions, and a resume continues exactly."""
    import shutil

    runs = {"today": tmp_path / "today", "old": tmp_path / "old"}
    result = run_cli([*SHORT, *options, "epochs=2", f"hydra.run.dir={runs['today']}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shutil.copytree(runs["today"], runs["old"], ignore=shutil.ignore_patterns(".mnist_exp.lock"))
    for file in ("weights.npz", "checkpoint.npz"):
        old_names(runs["old"] / file)
    from mnist_exp import load_model

    images = np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    np.testing.assert_array_equal(load_model(runs["old"]).predict_proba(images),
                                  load_model(runs["today"]).predict_proba(images))
    for name, run_dir in runs.items():  # each completed run extended into a new directory
        result = run_cli([f"resume={run_dir}", "epochs=3", f"hydra.run.dir={tmp_path / (name + '3')}"], cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    today, old = (pd.read_csv(tmp_path / f"{n}3" / "metrics.csv").drop(columns="seconds") for n in ("today", "old"))
    pd.testing.assert_frame_equal(old, today)
    with np.load(tmp_path / "old3" / "checkpoint.npz") as saved:
        assert "dense1/w" in saved.files and "w1" not in saved.files  # written back under today's names


@pytest.mark.parametrize("layout", ["missing/../existing", "missing/deeper/../../existing", "existing",
                                    "new/../existing/new2/x"])
def test_a_claim_through_missing_folders_removes_only_what_it_created(layout, tmp_path):
    """ownership.claim makes the folders it needs one by one; discard removes those and nothing
    that existed (an existing empty directory reached through `missing/..` is kept)."""
    from mnist_exp.files import ownership

    (tmp_path / "existing").mkdir()  # an empty folder the user had: it must survive
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    target = tmp_path / layout
    claimed = ownership.claim(target, fresh=True)
    (claimed / ".hydra").mkdir()  # what Hydra writes first
    (claimed / "mnist_exp.log").write_text("")
    assert ownership.discard(claimed, (".hydra", "mnist_exp.log"))
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_a_refused_claim_removes_the_folders_it_made_on_the_way(finished, tmp_path):
    from mnist_exp.files import ownership

    run_dir = copy_of(finished, tmp_path)
    before = snapshot(run_dir)
    with pytest.raises(ownership.DirectoryInUse):
        ownership.claim(tmp_path / "new" / ".." / "copy", fresh=True)
    assert not (tmp_path / "new").exists() and snapshot(run_dir) == before


@pytest.mark.parametrize("spelling", ["hydra.run.dir={d}", "++hydra.run.dir={d}", "hydra.run.dir=${{oc.env:RUN_D}}"])
def test_a_refused_run_through_a_missing_folder_keeps_the_existing_dir_it_names(spelling, tmp_path):
    existing = tmp_path / "existing"
    existing.mkdir()
    target = f"{tmp_path}/missing/../existing"
    result = run_cli(["lr=-1", spelling.format(d=target)], cwd=tmp_path, env={"RUN_D": target})
    assert result.returncode == 2 and "lr=-1.0 is out of range" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert existing.is_dir() and list(existing.iterdir()) == []  # nothing left in it either
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing"]



@pytest.mark.slow
def test_extending_a_completed_run_is_a_new_run_and_leaves_it_byte_identical(finished, tmp_path):
    """resume=RUN epochs=3 on a completed 2-epoch run: a new directory holds the 3-epoch record
    (the numbers of an uninterrupted 3-epoch run), names its parent; the parent is untouched."""
    parent = copy_of(finished, tmp_path)
    before = snapshot(parent)
    extension = tmp_path / "extension"
    result = run_cli([f"resume={parent}", "epochs=3", f"hydra.run.dir={extension}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert snapshot(parent) == before
    summary = json.loads((extension / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == 3 and summary["extends"] == str(parent)
    assert summary["run_dir"] == str(extension) and summary["config"]["epochs"] == 3
    whole = tmp_path / "whole"
    assert run_cli([*SHORT, "epochs=3", f"hydra.run.dir={whole}"], cwd=tmp_path).returncode == 0
    pd.testing.assert_frame_equal(pd.read_csv(extension / "metrics.csv").drop(columns="seconds"),
                                  pd.read_csv(whole / "metrics.csv").drop(columns="seconds"))
    with np.load(extension / "weights.npz") as got, np.load(whole / "weights.npz") as want:
        assert got.files == want.files and all(np.array_equal(got[k], want[k]) for k in want.files)
    again = run_cli([f"resume={parent}", "epochs=2", f"hydra.run.dir={tmp_path / 'nothing'}"], cwd=tmp_path)
    assert again.returncode == 2 and "nothing to do" in again.stderr
    assert not (tmp_path / "nothing").exists() and snapshot(parent) == before
