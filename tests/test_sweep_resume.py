"""-m resume=SWEEP_DIR: a killed sweep finished in its own directory, with the numbers of an
uninterrupted one; pending jobs in summary.csv; the refusals; joblib's job-named lines."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from helpers import run_cli, start

GRID = ["lr=0.002,0.004,0.006,0.008,0.01", "train_samples=3000", "test_samples=500", "epochs=4"]
JOBLIB = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
SEARCH = ["+search=optuna", "hydra.sweeper.n_trials=4", "hydra.sweeper.pruner=none", "val_samples=300",
          "train_samples=3000", "test_samples=300", "epochs=4", "hydra.sweeper.sampler.seed=1"]
TINY = ["lr=0.01,0.02", "train_samples=100", "test_samples=100", "epochs=1"]


def status(job_dir: Path):
    try:
        return json.loads((job_dir / "summary.json").read_text())["status"]
    except (OSError, ValueError, KeyError):
        return None


def rows(job_dir: Path) -> int:
    try:
        return max(0, len((job_dir / "metrics.csv").read_text().splitlines()) - 1)
    except OSError:
        return 0


def owns(pid: int, directory: Path) -> bool:
    """The process holds the directory's lock (its lock file names it)."""
    try:
        return (directory / ".mnist_exp.lock").read_text().startswith(f"pid {pid} ")
    except OSError:
        return False


def fingerprint(directory: Path) -> dict:
    """Every file below `directory` (hidden ones too): its bytes' hash and its mtime."""
    return {str(p.relative_to(directory)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*")) if p.is_file()}


def metrics(job_dir: Path) -> pd.DataFrame:
    return pd.read_csv(job_dir / "metrics.csv").drop(columns="seconds")


def kill_midway(args, sweep_dir: Path, cwd: Path, finished: int, timeout: float = 120, meanwhile=None) -> list:
    """Start the sweep (or its resume), and SIGKILL its whole process group once `finished` jobs
    completed and another job has recorded an epoch but not its last; returns the jobs that were
    midway. `meanwhile()` runs once, while the sweep runs."""
    where = [] if any(a.startswith("resume=") for a in args) else [f"hydra.sweep.dir={sweep_dir}"]
    proc = start(["-m", *args, *where], cwd, start_new_session=True)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            jobs = [d for d in sweep_dir.glob("[0-9]*") if d.is_dir()]
            done = [d for d in jobs if status(d) == "completed"]
            midway = [d for d in jobs
                      if status(d) == "running" and 1 <= rows(d) < 4 and (d / "checkpoint.npz").is_file()]
            if meanwhile is not None and midway and owns(proc.pid, sweep_dir):
                meanwhile()
                meanwhile = None
            if len(done) >= finished and midway:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                return midway
            assert proc.poll() is None, f"the sweep ended before it could be killed: {proc.stderr.read()}"
            time.sleep(0.02)
        raise AssertionError("no job was midway in time")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def uninterrupted(mnist_dir, tmp_path_factory) -> Path:
    tmp_path = tmp_path_factory.mktemp("whole")
    result = run_cli(["-m", *GRID, f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path / "sweep"


@pytest.mark.slow
@pytest.mark.parametrize("launcher", [[], JOBLIB], ids=["basic", "joblib"])
def test_a_killed_sweep_resumed_ends_as_an_uninterrupted_one(uninterrupted, tmp_path, launcher):
    sweep_dir = tmp_path / "sweep"
    midway = kill_midway([*GRID, *launcher], sweep_dir, tmp_path, finished=1 if launcher else 2)
    table = pd.read_csv(sweep_dir / "summary.csv")
    assert list(table["job"]) == [0, 1, 2, 3, 4]  # every job from the start
    assert "pending" in set(table["status"])  # the never-started ones
    finished = [d for d in sweep_dir.glob("[0-9]*") if status(d) == "completed"]
    before = {d.name: fingerprint(d) for d in finished}
    more = ["hydra.launcher.n_jobs=3"] if launcher else []  # how many jobs run at once may change
    result = run_cli(["-m", f"resume={sweep_dir}", *more], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sweep of 5 jobs: 5 completed" in result.stdout
    for job in range(5):
        assert status(sweep_dir / str(job)) == "completed"
        pd.testing.assert_frame_equal(metrics(sweep_dir / str(job)), metrics(uninterrupted / str(job)))
    assert {d.name: fingerprint(d) for d in finished} == before  # not even touched
    for job_dir in midway:  # went on from its checkpoint, not from the start
        assert "continuing after epoch" in (job_dir / "mnist_exp.log").read_text()
    table = pd.read_csv(sweep_dir / "summary.csv")
    assert list(table["status"]) == ["completed"] * 5
    assert not list(sweep_dir.glob("[5-9]*"))  # the same job numbers, no new ones


@pytest.mark.slow
def test_a_resume_killed_in_turn_and_resumed_again_still_ends_as_an_uninterrupted_one(uninterrupted, tmp_path):
    sweep_dir = tmp_path / "sweep"
    kill_midway(GRID, sweep_dir, tmp_path, finished=1)
    done = sum(status(d) == "completed" for d in sweep_dir.glob("[0-9]*"))

    def second_resume():  # while the first one runs
        refused(run_cli(["-m", f"resume={sweep_dir}"], cwd=tmp_path), str(sweep_dir), "in use")

    kill_midway([f"resume={sweep_dir}"], sweep_dir, tmp_path, finished=done + 1, meanwhile=second_resume)
    result = run_cli(["-m", f"resume={sweep_dir}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for job in range(5):
        pd.testing.assert_frame_equal(metrics(sweep_dir / str(job)), metrics(uninterrupted / str(job)))


@pytest.mark.slow
def test_the_summary_lists_every_job_from_the_start(mnist_dir, tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_cli(["-m", *TINY, "hidden_size=0,10", f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path)
    assert result.returncode == 1  # hidden_size=0 is refused: jobs 0 and 2 failed
    table = pd.read_csv(sweep_dir / "summary.csv")
    assert list(table["job"]) == [0, 1, 2, 3] and list(table["status"]) == ["failed", "completed"] * 2
    from mnist_exp.analysis.summarize import write_summary

    for job in (2, 3):  # as if they never started
        for path in sorted((sweep_dir / str(job)).rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        (sweep_dir / str(job)).rmdir()
    table = write_summary(sweep_dir, figure=False)
    assert list(table["status"]) == ["failed", "completed", "pending", "pending"]
    assert list(table["lr"]) == [0.01, 0.01, 0.02, 0.02] and list(table["hidden_size"]) == [0, 10, 0, 10]


@pytest.fixture(scope="module")
def done_sweep(mnist_dir, tmp_path_factory) -> Path:
    """A completed sweep of two jobs (tests may rebuild its summary, nothing else)."""
    tmp_path = tmp_path_factory.mktemp("done")
    sweep_dir = tmp_path / "done"
    assert run_cli(["-m", *TINY, f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path).returncode == 0
    return sweep_dir


def refused(result, *words) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("mnist_exp: error:") and all(w in lines[0] for w in words), lines


def test_a_completed_sweep_resumed_has_nothing_to_do(done_sweep, tmp_path):
    before = fingerprint(done_sweep)
    result = run_cli(["-m", f"resume={done_sweep}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sweep of 2 jobs: 2 completed" in result.stdout
    rebuilt = ("summary.csv", "comparison", "report", ".mnist_exp.lock")  # the sweep's views, its owner's name
    after = fingerprint(done_sweep)
    assert {k: v for k, v in after.items() if not k.startswith(rebuilt)} == \
        {k: v for k, v in before.items() if not k.startswith(rebuilt)}


@pytest.mark.parametrize("change", [["lr=0.5"], ["epochs=3"], ["hydra/launcher=joblib"], ["+search=optuna"],
                                    ["hydra.sweep.dir=elsewhere"]])
def test_a_resume_that_would_change_the_sweep_is_refused(done_sweep, tmp_path, change):
    before = fingerprint(done_sweep)
    result = run_cli(["-m", f"resume={done_sweep}", *change], cwd=tmp_path)
    refused(result, f"resume={done_sweep}", change[0].split("=")[0])
    assert fingerprint(done_sweep) == before and not (tmp_path / "elsewhere").exists()


def test_a_sweep_dir_given_to_a_single_run_says_how_to_resume_it(done_sweep, tmp_path):
    refused(run_cli([f"resume={done_sweep}"], cwd=tmp_path), "a sweep directory", f"-m resume={done_sweep}")


@pytest.mark.parametrize("flag", [["--cfg", "job"], ["--info"], ["--help"]])
def test_hydras_flags_are_refused_with_a_sweep_resume(done_sweep, tmp_path, flag):
    before = fingerprint(done_sweep)
    refused(run_cli(["-m", f"resume={done_sweep}", *flag], cwd=tmp_path), flag[0], "cannot be given")
    assert fingerprint(done_sweep) == before


@pytest.mark.slow
def test_a_sweep_of_the_users_own_presets_is_resumed_with_them(mnist_dir, tmp_path):
    presets = tmp_path / "presets"
    (presets / "experiment").mkdir(parents=True)
    (presets / "experiment" / "mine.yaml").write_text("# @package _global_\nlr: 0.02\nhidden_size: 20\n")
    sweep_dir = tmp_path / "sweep"
    assert run_cli(["-m", "experiment=mine", *TINY[1:], "seed=1,2", f"hydra.sweep.dir={sweep_dir}",
                    "--config-dir", str(presets)], cwd=tmp_path).returncode == 0
    shutil.rmtree(sweep_dir / "1")  # as if it never started
    refused(run_cli(["-m", f"resume={sweep_dir}", "--config-dir", str(tmp_path)], cwd=tmp_path), "--config-dir")
    result = run_cli(["-m", f"resume={sweep_dir}"], cwd=tmp_path)  # the sweep's own presets
    assert result.returncode == 0, result.stderr
    assert json.loads((sweep_dir / "1" / "summary.json").read_text())["config"]["hidden_size"] == 20


def test_the_sweeps_own_overrides_may_be_typed_again(done_sweep, tmp_path):
    result = run_cli(["-m", f"resume={done_sweep}", *TINY], cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_a_sweep_another_process_runs_is_refused(done_sweep, tmp_path):
    holder = subprocess.Popen(["python", "-c", "import sys, time; from mnist_exp.files import ownership; "
                               f"ownership.claim(__import__('pathlib').Path({str(done_sweep)!r}), fresh=False); "
                               "print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = fingerprint(done_sweep)
        result = run_cli(["-m", f"resume={done_sweep}"], cwd=tmp_path)
        refused(result, str(done_sweep), f"pid {holder.pid}", "in use")
        assert fingerprint(done_sweep) == before
    finally:
        holder.kill()
        holder.wait()


def test_a_directory_that_is_not_a_sweep_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    for target in (tmp_path / "empty", tmp_path / "missing"):
        refused(run_cli(["-m", f"resume={target}"], cwd=tmp_path), f"resume={target}", "not a sweep directory")
    assert list((tmp_path / "empty").iterdir()) == [] and not (tmp_path / "missing").exists()


def test_retry_failed_is_a_word_of_the_sweep_resume_only(tmp_path):
    refused(run_cli(["retry_failed=true"], cwd=tmp_path), "retry_failed", "resume=SWEEP_DIR")
    refused(run_cli(["-m", "lr=0.1,0.2", "retry_failed=true"], cwd=tmp_path), "retry_failed")


@pytest.mark.slow
def test_failed_jobs_stay_failed_unless_retried(mnist_dir, tmp_path):
    data = tmp_path / "data"  # empty: every job fails, as with a data disk not mounted
    data.mkdir()
    sweep_dir = tmp_path / "sweep"
    args = [*TINY, f"data.dir={data}", "data.retries=1", 'data.mirrors=["http://127.0.0.1:9/"]']
    assert run_cli(["-m", *args, f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path).returncode == 1
    assert [status(sweep_dir / j) for j in "01"] == ["failed", "failed"]
    for name in os.listdir(mnist_dir):
        (data / name).symlink_to(mnist_dir / name)
    before = fingerprint(sweep_dir / "0")
    kept = run_cli(["-m", f"resume={sweep_dir}"], cwd=tmp_path)
    assert kept.returncode == 1 and "job 0 failed" in kept.stderr and fingerprint(sweep_dir / "0") == before
    refused(run_cli(["-m", f"resume={sweep_dir}", "retry_failed=maybe"], cwd=tmp_path), "retry_failed")
    retried = run_cli(["-m", f"resume={sweep_dir}", "retry_failed=true"], cwd=tmp_path)
    assert retried.returncode == 0, retried.stderr
    assert [status(sweep_dir / j) for j in "01"] == ["completed", "completed"]
    assert list((sweep_dir / "0").glob(".set-aside*/summary.json"))  # the failure's record is kept aside


@pytest.mark.slow
def test_a_diverged_job_stays_as_it_is_even_when_failed_ones_are_retried(mnist_dir, tmp_path):
    sweep_dir = tmp_path / "sweep"
    sweep = run_cli(["-m", "lr=0.01,50", "train_samples=100", "test_samples=100", "epochs=1",
                     f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path)
    assert sweep.returncode == 1 and status(sweep_dir / "1") == "diverged", sweep.stderr
    before = fingerprint(sweep_dir / "1")
    result = run_cli(["-m", f"resume={sweep_dir}", "retry_failed=true"], cwd=tmp_path)
    assert result.returncode == 1 and "job 1 diverged" in result.stderr
    assert fingerprint(sweep_dir / "1") == before  # it would only diverge again


@pytest.mark.slow
def test_an_optuna_search_resumed_continues_its_study_to_n_trials(mnist_dir, tmp_path):
    optuna = pytest.importorskip("optuna")
    sweep_dir = tmp_path / "search"
    midway = kill_midway(SEARCH, sweep_dir, tmp_path, finished=1)
    result = run_cli(["-m", f"resume={sweep_dir}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="mnist_exp", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4  # the killed trial went on, no fifth one
    assert [status(sweep_dir / str(j)) for j in range(4)] == ["completed"] * 4
    assert not (sweep_dir / "4").exists()
    for job_dir in midway:  # from its checkpoint, under its own trial, which holds every epoch's value
        assert "continuing after epoch" in (job_dir / "mnist_exp.log").read_text()
        number = json.loads((job_dir / "summary.json").read_text())["trial"]["number"]
        assert sorted(trials[number].intermediate_values) == [0, 1, 2, 3]
    results = (sweep_dir / "optimization_results.yaml").read_text()
    assert "complete: 4" in results, results


@pytest.mark.slow
def test_an_optuna_search_stopped_with_ctrl_c_goes_on_with_the_same_parameters(mnist_dir, tmp_path):
    optuna = pytest.importorskip("optuna")
    sweep_dir = tmp_path / "search"
    proc = start(["-m", *SEARCH, f"hydra.sweep.dir={sweep_dir}"], tmp_path, start_new_session=True)
    try:
        while not any(status(d) == "running" and rows(d) >= 1 and (d / "checkpoint.npz").is_file()
                      for d in sweep_dir.glob("[0-9]*")):
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C at a terminal: the whole foreground group
        assert proc.wait(timeout=60) == 130
        assert f"continue the sweep with python -m mnist_exp -m resume={sweep_dir}" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    study = optuna.load_study(study_name="mnist_exp", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    stopped = [t for t in study.get_trials() if t.state.name == "FAIL"]
    assert len(stopped) == 1, study.get_trials()  # the Ctrl-C told it failed
    result = run_cli(["-m", f"resume={sweep_dir}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    trials = study.get_trials()
    assert [t.state.name for t in trials].count("COMPLETE") == 4 and len(trials) == 5
    again = [t for t in trials if t.params == stopped[0].params and t.state.name == "COMPLETE"]
    assert again and sorted(again[0].intermediate_values) == [0, 1, 2, 3]  # its recorded epochs told too
    assert [status(sweep_dir / str(j)) for j in range(4)] == ["completed"] * 4 and not (sweep_dir / "4").exists()


@pytest.mark.slow
def test_joblib_lines_name_their_job_and_each_log_holds_its_own(mnist_dir, tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_cli(["-m", "lr=0.01,0.02,0.03", "train_samples=300", "test_samples=100", "epochs=2", *JOBLIB,
                      f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    epochs = [line for line in result.stdout.splitlines() if "epoch " in line and "train loss" in line]
    assert len(epochs) == 6 and all(line.startswith(("[job 0] ", "[job 1] ", "[job 2] ")) for line in epochs)
    for job in range(3):
        log = (sweep_dir / str(job) / "mnist_exp.log").read_text()
        assert f"run {sweep_dir / str(job)}:" in log and log.count("train loss") == 2
        assert all(f"{sweep_dir / str(other)}" not in log for other in range(3) if other != job)


@pytest.mark.slow
def test_a_sweep_whose_slurm_jobs_are_still_queued_or_running_is_refused(mnist_dir, tmp_path):
    from test_slurm import SLURM, need_cluster

    need_cluster()
    sweep_dir = tmp_path / "s"
    submitted = run_cli(["-m", "epochs=300", "seed=1,2", "train_samples=2000", "test_samples=200", *SLURM,
                         "hydra.launcher.wait=false", f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path, timeout=120)
    assert submitted.returncode == 0, submitted.stderr
    record = (sweep_dir / "slurm_jobs.json").read_bytes()
    ids = [job["slurm_id"] for job in json.loads(record)["jobs"]]
    try:
        result = run_cli(["-m", f"resume={sweep_dir}"], cwd=tmp_path, timeout=120)
        refused(result, f"resume={sweep_dir}", "still queued or running on SLURM", ids[0].split("_")[0])
        assert (sweep_dir / "slurm_jobs.json").read_bytes() == record  # nothing submitted
    finally:
        subprocess.run(["scancel", ids[0].split("_")[0]], timeout=30)


@pytest.mark.slow
def test_a_slurm_sweep_with_a_cancelled_job_is_finished_by_its_resume(mnist_dir, tmp_path):
    from test_slurm import SLURM, need_cluster, wait_for

    need_cluster()
    sweep_dir, job = tmp_path / "s", ["seed=1", "train_samples=2000", "test_samples=200"]
    proc = start(["-m", "epochs=2,40", *job, *SLURM, f"hydra.sweep.dir={sweep_dir}"], tmp_path)
    try:
        wait_for(sweep_dir / "1" / "checkpoint.npz", 240)
        ids = {j["num"]: j["slurm_id"] for j in json.loads((sweep_dir / "slurm_jobs.json").read_text())["jobs"]}
        subprocess.run(["scancel", ids[1]], check=True, timeout=30)  # cancelled while it runs
        assert proc.wait(timeout=180) == 1
    finally:
        proc.kill()
        proc.wait()
    assert status(sweep_dir / "1") == "cancelled" and status(sweep_dir / "0") == "completed"
    before = fingerprint(sweep_dir / "0")
    result = run_cli(["-m", f"resume={sweep_dir}"], cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert status(sweep_dir / "1") == "completed" and fingerprint(sweep_dir / "0") == before
    assert "continuing after epoch" in (sweep_dir / "1" / "mnist_exp.log").read_text()
    single = run_cli(["epochs=40", *job, f"hydra.run.dir={tmp_path / 'whole'}"], cwd=tmp_path)
    assert single.returncode == 0, single.stderr
    pd.testing.assert_frame_equal(metrics(sweep_dir / "1"), metrics(tmp_path / "whole"))
