"""Sweeps go on past failed, diverged and killed jobs, and record each one."""

import json
import os
import shlex
import signal
import time
from pathlib import Path

import pandas as pd
import pytest

from helpers import run_cli, start

SHORT = ["train_samples=200", "test_samples=100", "epochs=1"]


def one_line_per_failure(stderr: str, jobs: int) -> None:
    lines = [line for line in stderr.splitlines() if line.startswith("mnist_exp: error:")]
    assert len(lines) == jobs, stderr
    assert "Traceback" not in stderr


@pytest.mark.slow
def test_an_optuna_search_goes_on_past_diverged_trials(mnist_dir, tmp_path):
    sweep_dir = tmp_path / "search"
    result = run_cli(["-m", "+search=optuna", "hydra.sweeper.n_trials=4", "lr=choice(50,0.01)", *SHORT,
                      f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    table = pd.read_csv(sweep_dir / "summary.csv")
    assert len(table) == 4 and set(table["status"]) <= {"completed", "diverged"}
    diverged = int((table["status"] == "diverged").sum())
    assert 1 <= diverged < 4
    one_line_per_failure(result.stderr, diverged)
    assert (sweep_dir / "optimization_results.yaml").is_file()


@pytest.mark.slow
def test_an_optuna_search_in_which_every_trial_fails_reports_each(mnist_dir, tmp_path):
    sweep_dir = tmp_path / "search"
    result = run_cli(["-m", "+search=optuna", "hydra.sweeper.n_trials=2", "lr=choice(50,60)", *SHORT,
                      f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path)
    assert result.returncode == 1
    one_line_per_failure(result.stderr, 2)
    assert len(pd.read_csv(sweep_dir / "summary.csv")) == 2


def test_an_optuna_search_of_no_trials_is_refused_before_it_starts(tmp_path):
    result = run_cli(["-m", "+search=optuna", "hydra.sweeper.n_trials=0", f"hydra.sweep.dir={tmp_path / 's'}"],
                     cwd=tmp_path)
    assert result.returncode == 2 and "hydra.sweeper.n_trials=0 is out of range" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "s").exists()


@pytest.mark.slow
def test_the_override_example_in_the_optuna_preset_runs_as_written(mnist_dir, tmp_path):
    preset = (Path(__file__).parents[1] / "conf" / "search" / "optuna.yaml").read_text()
    example = next(line for line in preset.splitlines() if "python -m mnist_exp" in line and "params" in line)
    args = shlex.split(example.lstrip("# "))[3:]  # after "python -m mnist_exp"
    args = [a for a in args if not a.startswith("hydra.sweeper.n_trials=")] + ["hydra.sweeper.n_trials=1"]
    result = run_cli([*args, *SHORT, f"hydra.sweep.dir={tmp_path / 's'}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_a_killed_joblib_worker_costs_only_the_jobs_it_ran(mnist_dir, tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = start(["-m", "seed=1,2,3", "epochs=300", "train_samples=300", "test_samples=100", "hydra/launcher=joblib",
                  "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path)
    first = sweep_dir / "0" / "summary.json"
    deadline = time.time() + 60
    while not (first.is_file() and (sweep_dir / "0" / "checkpoint.npz").is_file()) and time.time() < deadline:
        time.sleep(0.05)
    os.kill(json.loads(first.read_text())["runtime"]["pid"], signal.SIGKILL)  # as the OOM killer would
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 1, stderr
    table = pd.read_csv(sweep_dir / "summary.csv")
    assert len(table) == 3
    killed = table[table["job"] == 0].iloc[0]
    assert killed["status"] == "interrupted" and "SIGKILL(-9)" in killed["reason"]
    assert f"resume={sweep_dir / '0'}" in killed["reason"]
    assert table.loc[table["job"] == 2, "status"].item() == "completed"  # the job not yet started still ran
    assert set(table["status"]) <= {"completed", "interrupted"}
    assert "Traceback" not in stderr and "TerminatedWorkerError" not in stderr
    assert (sweep_dir / "comparison.png").is_file()


@pytest.mark.slow
def test_a_resumed_optuna_study_proposes_new_trials_reproducibly(mnist_dir, tmp_path):
    def search(db: str, sweep: str) -> list:
        result = run_cli(["-m", "+search=optuna", "hydra.sweeper.n_trials=2", *SHORT,
                          f"hydra.sweeper.storage=sqlite:///{tmp_path / db}", f"hydra.sweep.dir={tmp_path / sweep}"],
                         cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return pd.read_csv(tmp_path / sweep / "summary.csv")[["lr", "hidden_size"]].values.tolist()

    first, resumed = search("a.db", "a1"), search("a.db", "a2")
    assert not any(trial in first for trial in resumed)
    assert search("b.db", "b1") == first and search("b.db", "b2") == resumed


@pytest.mark.slow
def test_an_optuna_search_draws_its_trials_not_a_grid(mnist_dir, tmp_path):
    sweep_dir = tmp_path / "s"
    result = run_cli(["-m", "+search=optuna", "hydra.sweeper.n_trials=3", "lr=choice(50,0.01)", *SHORT,
                      f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr
    import matplotlib.image

    assert matplotlib.image.imread(sweep_dir / "comparison.png").shape[:2] == (495, 1430)  # trials + 2 params


@pytest.mark.slow
def test_ctrl_c_during_a_sweep_lists_the_jobs_that_never_started(mnist_dir, tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = start(["-m", "lr=0.005,0.01,0.02", "epochs=300", "train_samples=500", "test_samples=100",
                  f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path)
    deadline = time.time() + 60
    while not (sweep_dir / "1" / "checkpoint.npz").is_file() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "sweep of 3 jobs: 1 completed, 1 never started" in stdout
    assert "job 2 never started (lr=0.02 epochs=300 train_samples=500 test_samples=100)" in stderr
    assert (sweep_dir / "comparison.png").is_file()


@pytest.mark.parametrize("grid", [
    ["lr=range(1,10001)", "hidden_size=range(1,10001)"],  # 10**8 jobs: Hydra's sweeper ran out of memory
    ["seed=range(0,200)", "hidden_size=range(1,201)"],  # 40,000
    ["lr=range(0.0001,1,0.0000001)"],  # a float range: 10**7
    ["seed=" + ",".join(map(str, range(10_001)))],  # a long list
    ["seed=shuffle(range(0,20000))", "hydra/launcher=joblib"],
    ["--config-dir", "conf", "experiment=grid"],  # hydra.sweeper.params in a config file
])
def test_a_sweep_over_the_job_limit_is_refused_before_anything_is_written(tmp_path, grid):
    preset = tmp_path / "conf" / "experiment" / "grid.yaml"
    preset.parent.mkdir(parents=True)
    preset.write_text("# @package _global_\nhydra:\n  sweeper:\n    params:\n      seed: range(0,20000)\n")
    began = time.monotonic()
    result = run_cli(["-m", *grid, f"hydra.sweep.dir={tmp_path / 's'}"], cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "jobs, more than the 10000 a sweep may have" in lines[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf"]  # no sweep dir, no outputs/
    assert time.monotonic() - began < 20  # counted, not listed
