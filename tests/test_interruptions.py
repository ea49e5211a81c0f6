"""Runs killed again and again (SIGKILL or SIGTERM, at random moments) and resumed each time
end with exactly the numbers of an uninterrupted run; a resume reads its history as a stream."""

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import helpers
from helpers import run_cli

LOOP = ["train_samples=3000", "test_samples=500", "epochs=150"]


def start(args, cwd: Path) -> subprocess.Popen:
    return helpers.start(args, cwd, stdout=subprocess.DEVNULL)


def metrics(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "metrics.csv").drop(columns="seconds")


@pytest.mark.slow
def test_a_kill_loop_ends_with_the_numbers_of_an_uninterrupted_run(mnist_dir, tmp_path):
    whole = tmp_path / "whole"
    assert run_cli([*LOOP, f"hydra.run.dir={whole}"], cwd=tmp_path).returncode == 0
    expected = metrics(whole)

    run_dir, chance = tmp_path / "run", random.Random(20261129)
    first = start([*LOOP, f"hydra.run.dir={run_dir}"], tmp_path)
    while not (run_dir / "checkpoint.npz").is_file() and first.poll() is None:
        time.sleep(0.02)
    kills = []
    proc = first
    for _ in range(22):
        time.sleep(chance.uniform(0.3, 1.1))
        if proc.poll() is not None:  # it finished before the signal
            break
        sig = chance.choice([signal.SIGKILL, signal.SIGTERM])
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
        assert "Traceback" not in stderr, stderr
        kills.append(sig.name)
        done = metrics(run_dir)  # after every kill: whole rows, a prefix of the uninterrupted run's
        pd.testing.assert_frame_equal(done, expected.iloc[:len(done)])
        if json.loads((run_dir / "summary.json").read_text())["status"] == "completed":
            proc = None  # the signal came as the finished run was exiting
            break
        proc = start([f"resume={run_dir}"], tmp_path)
    if proc is not None:
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
    assert len(kills) >= 20, f"only {len(kills)} interruptions: the loop needs longer runs"
    pd.testing.assert_frame_equal(metrics(run_dir), expected)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == 150
    assert summary["final"]["test_accuracy"] == expected["test_accuracy"].iloc[-1]
    assert not list(run_dir.glob(".*.part"))


@pytest.mark.slow
def test_resume_reads_a_long_history_as_a_stream(mnist_dir, tmp_path):
    """300,000 epochs of history (45 MB): the resume's memory stays that of a short run."""
    args = ["train_samples=300", "test_samples=100"]
    short, long = tmp_path / "short", tmp_path / "long"
    for run_dir in (short, long):
        assert run_cli([*args, "epochs=1", f"hydra.run.dir={run_dir}"], cwd=tmp_path).returncode == 0
    rows = 300_000
    with open(long / "metrics.csv", "a") as f:
        f.writelines(f"{e},0.5,0.5,0.5,0.5,0.01\r\n" for e in range(1, rows))
    with np.load(long / "checkpoint.npz") as saved:
        np.savez(long / "checkpoint.npz", **{**dict(saved), "epochs_done": np.array(rows)})

    def peak_rss(run_dir: Path, epochs: int) -> int:  # extended into run_dir + "-more"
        code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
                "stdout=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
        out = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "mnist_exp", f"resume={run_dir}",
                              f"epochs={epochs}", f"hydra.run.dir={run_dir}-more"], cwd=tmp_path, capture_output=True, text=True, check=True)
        return int(out.stdout.split()[-1]) * 1024

    baseline, with_history = peak_rss(short, 2), peak_rss(long, rows + 1)
    assert with_history < baseline + 60 * 2**20, (baseline, with_history)
    assert len(pd.read_csv(tmp_path / "long-more" / "metrics.csv")) == rows + 1


def test_an_epochs_bookkeeping_does_not_read_the_history_again(tmp_path, tiny_files, monkeypatch):
    """Per-epoch cost must not grow with the run: the summary keeps a running tally, and
    metrics.csv is read back once, for the figure, after the last epoch."""
    from helpers import data_config
    from mnist_exp import record
    from mnist_exp.config import Config
    from mnist_exp.runner.experiment import run_experiment

    cache = tmp_path / "cache"
    cache.mkdir()
    for name, raw in tiny_files.values():
        (cache / name).write_bytes(raw)
    reads = []
    read_metrics = record.read_metrics
    monkeypatch.setattr(record, "read_metrics", lambda *a, **k: reads.append(a) or read_metrics(*a, **k))
    cfg = Config(train_samples=50, test_samples=20, epochs=60, data=data_config(tiny_files, cache, ["http://127.0.0.1:9/"]))
    result = run_experiment(cfg, tmp_path / "run")
    assert result.epochs_run == 60 and result.status == "completed" and len(reads) == 1
    best = pd.read_csv(tmp_path / "run" / "metrics.csv").sort_values(["test_accuracy", "epoch"], ascending=[False, True])
    assert result.best["epoch"] == best["epoch"].iloc[0]


@pytest.mark.slow
@pytest.mark.parametrize("gap", [0.0, 0.005, 0.05])
def test_a_second_ctrl_c_right_after_the_first_still_points_to_the_resume(mnist_dir, tmp_path, gap):
    """Two Ctrl-Cs a few ms apart: the second lands while the first is being recorded. The
    message must still name the checkpointed run, not say there is nothing to resume."""
    run_dir = tmp_path / "run"
    proc = start([*LOOP, f"hydra.run.dir={run_dir}"], tmp_path)
    deadline = time.monotonic() + 120
    while not (run_dir / "checkpoint.npz").is_file() or len(metrics(run_dir)) < 2:
        assert time.monotonic() < deadline and proc.poll() is None, "the run never checkpointed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    time.sleep(gap)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"resume={run_dir}" in err and "nothing to resume" not in err, err
    assert "Traceback" not in err, err
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
