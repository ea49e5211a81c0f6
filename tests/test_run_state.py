"""A run's state as the result tools tell it: `running` only while a live process holds the
run (its lock), `interrupted` for one killed without a word; `evaluate` says which."""

import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import run_cli
from test_record_files import finished  # noqa: F401 (a fixture: a small finished run)


def a_dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.slow
def test_a_run_killed_without_a_word_is_listed_interrupted(finished, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps({**summary, "status": "running"}))  # as SIGKILL leaves it
    (run_dir / ".mnist_exp.lock").write_text(f"pid {a_dead_pid()} on {platform.node()} since 2026-12-03T09:00:00\n")
    result = run_cli([str(run_dir), "--status", "interrupted"], cwd=tmp_path, module="mnist_exp.runs")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2 and " interrupted " in result.stdout.splitlines()[1], result.stdout


@pytest.fixture
def live_run(mnist_dir, tmp_path):
    run_dir = tmp_path / "live"
    process = subprocess.Popen([sys.executable, "-m", "mnist_exp", "train_samples=2000", "test_samples=100",
                                "epochs=10000", f"hydra.run.dir={run_dir}"], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not (run_dir / "checkpoint.npz").is_file() and time.time() < deadline and process.poll() is None:
            time.sleep(0.1)
        assert (run_dir / "checkpoint.npz").is_file(), "the run wrote no checkpoint"
        yield run_dir
    finally:
        process.kill()
        process.wait()


@pytest.mark.slow
def test_a_live_run_is_running_in_the_list_and_evaluate_says_so(live_run, tmp_path):
    listed = run_cli([str(live_run), "--status", "running"], cwd=tmp_path, module="mnist_exp.runs")
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.splitlines()) == 2 and " running " in listed.stdout.splitlines()[1], listed.stdout
    scored = run_cli([str(live_run)], cwd=tmp_path, module="mnist_exp.evaluate")
    assert scored.returncode == 0, scored.stderr
    assert "still running" in scored.stderr and "interrupted" not in scored.stderr
