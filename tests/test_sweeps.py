"""Hydra multirun end to end: launchers, the sweep summary, failures, Optuna, comparison."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from helpers import run_cli
from mnist_exp.analysis import results

REPO = Path(__file__).resolve().parents[1]
TINY = ["train_samples=60", "test_samples=40", "epochs=2"]
GRID = ["lr=0.005,0.02", "hidden_size=8,16"]


def sweep(tmp_path: Path, *args: str):
    result = run_cli(["-m", *args, *TINY, f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path)
    return result, tmp_path / "sweep"


@pytest.fixture(scope="module")
def basic_sweep(mnist_dir, tmp_path_factory):
    result, sweep_dir = sweep(tmp_path_factory.mktemp("basic"), *GRID)
    assert result.returncode == 0, result.stderr
    return sweep_dir


def metrics_by_setting(sweep_dir: Path) -> dict:
    history = results.load_history(sweep_dir)
    return {key: group.drop(columns=["seconds", "run_dir", "job"]).reset_index(drop=True)
            for key, group in history.groupby(["lr", "hidden_size"])}


@pytest.mark.slow
def test_grid_sweep_writes_a_full_record_per_job_and_a_summary(basic_sweep):
    for job in range(4):
        for name in ("metrics.csv", "summary.json", "weights.npz", "curves.png", "model_card.md", ".hydra"):
            assert (basic_sweep / str(job) / name).exists(), (job, name)
    summary = pd.read_csv(basic_sweep / "summary.csv")
    assert list(summary.columns[:4]) == ["job", "lr", "hidden_size", "status"]
    assert summary["job"].tolist() == [0, 1, 2, 3]
    assert sorted(zip(summary["lr"], summary["hidden_size"])) == [(0.005, 8), (0.005, 16), (0.02, 8), (0.02, 16)]
    assert (summary["status"] == "completed").all() and (summary["epochs_run"] == 2).all()
    for row in summary.itertuples():
        assert row.final_test_accuracy == pd.read_csv(Path(row.run_dir) / "metrics.csv")["test_accuracy"].iloc[-1]
    assert (basic_sweep / "comparison.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_joblib_runs_in_parallel_with_one_blas_thread_per_job_and_same_numbers(basic_sweep, tmp_path):
    result, sweep_dir = sweep(tmp_path, *GRID, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    assert result.returncode == 0, result.stderr
    pids, threads = set(), set()
    for job in range(4):
        runtime = json.loads((sweep_dir / str(job) / "summary.json").read_text())["runtime"]
        pids.add(runtime["pid"])
        threads.add(runtime["blas_threads"])
    assert len(pids) == 2 and os.getpid() not in pids  # two worker processes
    assert threads == {max(1, os.cpu_count() // 2)}  # no oversubscription
    expected, got = metrics_by_setting(basic_sweep), metrics_by_setting(sweep_dir)
    assert expected.keys() == got.keys()
    for key in expected:
        pd.testing.assert_frame_equal(expected[key], got[key])


@pytest.mark.slow
def test_submitit_local_runs_the_same_jobs(basic_sweep, tmp_path):
    result, sweep_dir = sweep(tmp_path, "lr=0.005", "hidden_size=8,16", "hydra/launcher=submitit_local",
                              "hydra.launcher.timeout_min=5")
    assert result.returncode == 0, result.stderr
    summary = pd.read_csv(sweep_dir / "summary.csv")
    assert summary["status"].tolist() == ["completed", "completed"]
    expected, got = metrics_by_setting(basic_sweep), metrics_by_setting(sweep_dir)
    for key in got:
        pd.testing.assert_frame_equal(expected[key], got[key])


@pytest.mark.slow
def test_failing_and_diverging_jobs_are_recorded_and_the_others_finish(mnist_dir, tmp_path):
    result, sweep_dir = sweep(tmp_path, "lr=0.005,50", "hidden_size=8,0")
    assert result.returncode == 1
    summary = pd.read_csv(sweep_dir / "summary.csv").set_index(["lr", "hidden_size"])
    assert summary.loc[(0.005, 8), "status"] == "completed"
    assert summary.loc[(50.0, 8), "status"] == "diverged"
    assert "loss is not finite at epoch 0" in summary.loc[(50.0, 8), "reason"]
    for lr in (0.005, 50.0):
        assert summary.loc[(lr, 0), "status"] == "failed"
        assert "hidden_size=0 is out of range" in summary.loc[(lr, 0), "reason"]
    assert len(pd.read_csv(sweep_dir / "0" / "metrics.csv")) == 2  # the good job kept everything
    errors = [line for line in result.stderr.splitlines() if line.startswith("mnist_exp: error: job")]
    assert len(errors) == 3 and "Traceback" not in result.stderr
    assert "sweep of 4 jobs: 1 completed" in result.stdout
    assert (sweep_dir / "comparison.png").read_bytes().startswith(b"\x89PNG")  # drawn once, at the end


@pytest.mark.slow
def test_a_sweep_where_every_job_fails_still_gets_its_summary_quietly(mnist_dir, tmp_path):
    result, sweep_dir = sweep(tmp_path, "lr=0.005,0.01", "hidden_size=0,-5")
    assert result.returncode == 1
    assert (pd.read_csv(sweep_dir / "summary.csv")["status"] == "failed").all()
    assert (sweep_dir / "comparison.png").is_file()
    assert "Warning" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_summarize_rebuilds_the_summary_from_the_run_dirs(basic_sweep):
    before = (basic_sweep / "summary.csv").read_text()
    (basic_sweep / "summary.csv").unlink()
    (basic_sweep / "comparison.png").unlink()
    result = run_cli([str(basic_sweep)], cwd=basic_sweep, module="mnist_exp.summarize")
    assert result.returncode == 0, result.stderr
    assert (basic_sweep / "summary.csv").read_text() == before
    assert (basic_sweep / "comparison.png").is_file()


def test_summarize_refuses_a_directory_without_runs(tmp_path):
    result = run_cli([str(tmp_path)], cwd=tmp_path, module="mnist_exp.summarize")
    assert result.returncode != 0 and "no runs found" in result.stderr


def test_load_runs_gives_typed_config_columns_for_any_kind_of_path(basic_sweep, tmp_path):
    runs = results.load_runs(basic_sweep)
    assert len(runs) == 4
    assert runs["lr"].dtype == "float64" and runs["hidden_size"].dtype == "int64"
    assert runs["seed"].dtype == "int64" and runs["final_test_accuracy"].dtype == "float64"
    assert {"status", "reason", "epochs_run", "best_test_accuracy", "best_epoch", "run_dir"} <= set(runs.columns)
    assert len(results.load_runs(basic_sweep / "2")) == 1
    assert len(results.load_runs(basic_sweep.parent)) == 4  # a tree holding the sweep
    assert len(results.load_runs([basic_sweep / "0", basic_sweep / "1", basic_sweep])) == 4  # no duplicates
    with pytest.raises(FileNotFoundError, match="no such run"):
        results.load_runs(tmp_path / "nope")


def test_load_history_has_one_row_per_run_per_epoch_with_config_columns(basic_sweep):
    history = results.load_history(basic_sweep)
    assert len(history) == 4 * 2
    assert history["lr"].dtype == "float64" and history["hidden_size"].dtype == "int64"
    assert history["epoch"].dtype == "int64" and history["test_accuracy"].dtype == "float64"
    assert history.groupby("run_dir")["epoch"].apply(list).tolist() == [[0, 1]] * 4


@pytest.mark.slow
def test_optuna_preset_searches_lr_and_hidden_size(mnist_dir, tmp_path):
    result, sweep_dir = sweep(tmp_path, "+search=optuna", "hydra.sweeper.n_trials=3")
    assert result.returncode == 0, result.stderr
    summary = pd.read_csv(sweep_dir / "summary.csv")
    assert list(summary.columns[:4]) == ["job", "trial", "lr", "hidden_size"] and len(summary) == 3
    assert summary["lr"].between(0.0005, 0.05).all() and (summary["hidden_size"] % 32 == 0).all()
    assert summary["hidden_size"].between(32, 256).all()
    best = (sweep_dir / "optimization_results.yaml").read_text()
    assert f"best_value: {summary['objective'].max()}" in best


@pytest.mark.slow
def test_compare_runs_pools_seeds_as_mean_and_std(mnist_dir, tmp_path):
    result, sweep_dir = sweep(tmp_path, "lr=0.005,0.02", "seed=1,2")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "ranked.png"
    compare = subprocess.run([sys.executable, str(REPO / "scripts" / "compare_runs.py"), str(sweep_dir),
                              "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert compare.returncode == 0, compare.stderr
    lines = compare.stdout.splitlines()
    assert lines[0].split()[:3] == ["rank", "lr", "final_test_accuracy"]
    runs = results.load_runs(sweep_dir)
    best_lr = runs.groupby("lr")["final_test_accuracy"].mean().idxmax()
    mean = runs[runs["lr"] == best_lr]["final_test_accuracy"].mean()
    assert lines[1].split()[:3] == ["1", f"{best_lr:.3f}", f"{mean:.4f}"] and "±" in lines[1]
    assert out.read_bytes().startswith(b"\x89PNG")
