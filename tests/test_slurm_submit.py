"""A SLURM sweep that cannot be submitted: the real sbatch, pointed at a controller that is not there.

Needs only SLURM's client commands, not a cluster (tests/test_slurm.py has those); the last
tests need none: `wait=false` refused, and a SLURM sweep's record read without SLURM.
"""

import json
import os
import shutil
import socket
import sys
from pathlib import Path

import pytest

import pandas as pd

from helpers import run_cli

SWEEP = ["-m", "seed=1,2", "epochs=1", "hydra/launcher=submitit_slurm", "hydra.launcher.partition=debug"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unreachable_cluster(directory: Path) -> Path:
    """A slurm.conf whose controller's port has nothing listening."""
    conf = directory / "slurm.conf"
    conf.write_text(f"""ClusterName=nowhere
SlurmctldHost=localhost
SlurmctldPort={free_port()}
AuthType=auth/munge
SlurmUser=root
MpiDefault=none
ProctrackType=proctrack/linuxproc
NodeName=localhost CPUs=1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
""")
    return conf


def refused_in_one_line(result) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mnist_exp: error: nothing was submitted to SLURM: "), result.stderr
    return lines[0]


@pytest.mark.slow  # sbatch tries the controller for ~9 s
@pytest.mark.skipif(not shutil.which("sbatch"), reason="no sbatch on this machine")
def test_a_sweep_slurm_cannot_take_is_one_line_exit_2_and_leaves_nothing(tmp_path):
    conf = unreachable_cluster(tmp_path)
    result = run_cli([*SWEEP, f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path,
                     env={"SLURM_CONF": str(conf)}, timeout=120)
    assert "sbatch: error: Batch job submission failed: Unable to contact slurm controller" in refused_in_one_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slurm.conf"]  # no sweep dir, no outputs/


def test_a_slurm_sweep_where_slurm_is_not_installed_is_one_line_exit_2(tmp_path):
    result = run_cli([*SWEEP, f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path,
                     env={"PATH": os.path.dirname(sys.executable)}, timeout=120)
    assert "srun" in refused_in_one_line(result)
    assert list(tmp_path.iterdir()) == []


def refused_before_anything(args, tmp_path: Path) -> str:
    """The one line of a sweep refused before it began (exit 2, nothing written)."""
    result = run_cli([*args, f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and list(tmp_path.iterdir()) == [], result.stderr
    return lines[0]


def test_a_detached_search_is_refused_before_anything_is_submitted(tmp_path):
    """An Optuna search needs each trial's value to ask for the next: it cannot walk away."""
    line = refused_before_anything(["-m", "+search=optuna", "hydra.sweeper.n_trials=2", "hydra/launcher=submitit_slurm",
                                    "hydra.launcher.wait=false"], tmp_path)
    assert "hydra.launcher.wait=false" in line and "Optuna" in line


def test_a_wait_that_is_not_a_boolean_is_one_line_exit_2(tmp_path):
    line = refused_before_anything([*SWEEP, "hydra.launcher.wait=later"], tmp_path)
    assert "wait" in line and "later" in line


def test_the_readers_show_a_slurm_sweeps_jobs_without_slurm_and_survive_a_damaged_record(tmp_path):
    """A copy of a detached sweep dir (its slurm_jobs.json as the launcher writes it) read where
    no SLURM command exists: the jobs without a directory are listed as last collected."""
    sweep_dir, no_slurm = tmp_path / "s", {"PATH": os.path.dirname(sys.executable)}
    sweep_dir.mkdir()
    jobs = [{"num": n, "slurm_id": f"41_{n}", "overrides": [f"seed={n}"], "dir": str(n),
             "config": {"seed": n, "lr": 0.01, "data": {"name": "mnist"}}} for n in (0, 1)]
    record = {"wait": False, "jobs": jobs, "states": {"41_1": {"state": "CANCELLED by 0", "checked_at": "then"}}}
    (sweep_dir / "slurm_jobs.json").write_text(json.dumps(record))
    result = run_cli([str(sweep_dir)], cwd=tmp_path, module="mnist_exp.summarize", env=no_slurm)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(sweep_dir / "summary.csv").set_index("job")
    assert table["status"].tolist() == ["pending", "cancelled"] and table["seed"].tolist() == [0, 1]
    assert table.loc[1, "reason"] == "SLURM job 41_1 ended CANCELLED by 0 before it started"
    listed = run_cli([str(sweep_dir), "--status", "pending", "--format", "csv"], cwd=tmp_path, module="mnist_exp.runs",
                     env=no_slurm)
    assert listed.returncode == 0 and len(listed.stdout.strip().splitlines()) == 2, listed.stderr  # header, job 0
    (sweep_dir / "slurm_jobs.json").write_text('{"jobs": [')
    damaged = run_cli([str(sweep_dir)], cwd=tmp_path, module="mnist_exp.summarize", env=no_slurm)
    assert damaged.returncode == 2 and "Traceback" not in damaged.stderr
    warning, error = damaged.stderr.strip().splitlines()
    assert "slurm_jobs.json: cannot be read" in warning and "no runs found" in error


def _note_jobs(sweep_dir: str, first: int) -> None:
    from mnist_exp.analysis import slurm_jobs

    for num in range(first, first + 20):
        slurm_jobs.add_jobs(Path(sweep_dir), [{"num": num, "slurm_id": f"7_{num}", "overrides": [], "dir": str(num)}],
                            wait=False)


def test_launches_noting_their_jobs_at_once_lose_none(tmp_path):
    """A resumed sweep submits its jobs one launch at a time, from threads (and two sweeps'
    processes may share a dir's record): each note is kept."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_note_jobs, args=(str(tmp_path), first)) for first in (0, 20, 40)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    record = json.loads((tmp_path / "slurm_jobs.json").read_text())
    assert [job["num"] for job in record["jobs"]] == list(range(60))


@pytest.mark.parametrize("state", ["RUNNING", "COMPLETING"])
def test_a_run_interrupted_while_slurm_still_holds_its_job_is_running_until_slurm_ends_it(state, tmp_path):
    """scancel's SIGTERM: the run records itself interrupted before sacct says CANCELLED."""
    from mnist_exp.analysis.slurm_jobs import _decide

    status, reason = _decide("7_2", state, True, tmp_path, "interrupted")
    assert status == "running" and f"SLURM job 7_2 is {state}" in reason
    assert _decide("7_2", state, True, tmp_path, "running") is None  # the run's own word stands
    assert _decide("7_2", "CANCELLED by 0", True, tmp_path, "interrupted")[0] == "cancelled"
