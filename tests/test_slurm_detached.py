"""Submit and walk away: a SLURM sweep with hydra.launcher.wait=false on the real cluster
(scripts/slurm_cluster.sh up; skipped without one unless MNIST_EXP_REQUIRE_SLURM=1), and what
summarize, runs and the report show of it while it runs and after, with and without SLURM's
commands. Every wait is bounded.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from helpers import run_cli, start
from test_slurm import SLURM, cluster, wait_for  # noqa: F401 (cluster: the module's autouse fixture)

DETACHED = [*SLURM, "hydra.launcher.wait=false", "hydra.launcher.array_parallelism=2"]
# jobs 0, 1: two epochs (they complete); jobs 2, 3: long (one cancelled running, one before it starts)
GRID = ["epochs=2,300", "seed=1,2", "train_samples=2000", "test_samples=200"]


def statuses(sweep_dir: Path, env=None, tries: int = 5) -> pd.DataFrame:
    """summary.csv as summarize wrote it, checked against the state it printed (a job ending
    meanwhile rewrites summary.csv: then summarize is asked again)."""
    result = run_cli([str(sweep_dir)], cwd=sweep_dir.parent, module="mnist_exp.summarize", env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(sweep_dir / "summary.csv").set_index("job")
    said = next(line for line in result.stdout.splitlines() if re.match(r"\d+ jobs?: ", line))
    counts = {f"{n} {status}" for status, n in table["status"].value_counts().items()}
    if set(said.split(": ", 1)[1].split(", ")) != counts and tries > 1:
        return statuses(sweep_dir, env, tries - 1)
    assert said.startswith(f"{len(table)} jobs: " if len(table) > 1 else "1 job: ") and set(said.split(": ", 1)[1].split(", ")) == counts
    for job in table.index[table["status"].isin(["cancelled", "failed"])]:
        assert f"\njob {job} {table.loc[job, 'status']}: {table.loc[job, 'reason']}\n" in result.stdout
    return table


def settled(sweep_dir: Path, seconds: float = 240) -> pd.DataFrame:
    """summary.csv once no job is pending or running."""
    deadline = time.time() + seconds
    while True:
        table = statuses(sweep_dir)
        if not table["status"].isin(["pending", "running"]).any():
            return table
        assert time.time() < deadline, f"jobs still going after {seconds} s:\n{table[['status', 'reason']]}"
        time.sleep(2)


def slurm_state(job_id: str) -> str:
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"], capture_output=True, text=True,
                         timeout=30).stdout.split()
    return out[0] if out else ""


@pytest.mark.slow
def test_a_detached_sweep_returns_at_once_and_the_readers_follow_it(mnist_dir, tmp_path):
    sweep_dir = tmp_path / "s"
    began = time.time()
    submitted = run_cli(["-m", *GRID, *DETACHED, f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path, timeout=120)
    took = time.time() - began
    assert submitted.returncode == 0, submitted.stderr
    assert took < 30, f"the submitting process took {took:.1f} s"
    record = json.loads((sweep_dir / "slurm_jobs.json").read_text())
    ids = {job["num"]: job["slurm_id"] for job in record["jobs"]}
    assert sorted(ids) == [0, 1, 2, 3]
    assert [job["overrides"] for job in record["jobs"]][2] == ["epochs=300", "seed=1", "train_samples=2000",
                                                              "test_samples=200"]
    assert str(sweep_dir) in submitted.stdout and all(i in submitted.stdout for i in ids.values())
    assert "mnist_exp.summarize" in submitted.stdout and "error" not in submitted.stderr
    assert record["jobs"][2]["config"]["epochs"] == 300 and record["jobs"][2]["dir"] == "2"
    array = ids[0].split("_")[0]
    try:
        follow(sweep_dir, ids, tmp_path)
    finally:
        subprocess.run(["scancel", array], timeout=30)  # a failed test leaves no job running


def follow(sweep_dir: Path, ids: dict, tmp_path: Path) -> None:
    script = next((sweep_dir / ".submitit").glob("*/*_submission.sh")).read_text()
    assert "#SBATCH --mem=2GB" in script  # the largest job's arrays (estimated, under 1 GB) plus 1 GB of room

    subprocess.run(["scancel", ids[3]], check=True, timeout=30)  # waits behind 0 and 1: never starts
    early = statuses(sweep_dir)
    assert len(early) == 4 and set(early["status"]) <= {"pending", "running", "completed", "cancelled"}
    assert early.loc[2, "status"] in ("pending", "running") and early.loc[2, "epochs"] == 300
    wait_for(sweep_dir / "2" / "checkpoint.npz", 240)
    subprocess.run(["scancel", ids[2]], check=True, timeout=30)  # cancelled while it runs

    table = settled(sweep_dir)
    assert table.loc[[0, 1], "status"].tolist() == ["completed", "completed"]
    assert table.loc[[2, 3], "status"].tolist() == ["cancelled", "cancelled"]
    assert f"SLURM job {ids[2]} ended CANCELLED" in table.loc[2, "reason"]
    assert f"resume={sweep_dir / '2'}" in table.loc[2, "reason"]
    # (SLURM 22.05's sacct keeps no line of an array task cancelled while it waited)
    assert f"SLURM job {ids[3]} " in table.loc[3, "reason"] and "before it started" in table.loc[3, "reason"]
    assert [slurm_state(ids[n]) for n in range(3)] == ["COMPLETED", "COMPLETED", "CANCELLED"]
    assert json.loads((sweep_dir / "2" / "summary.json").read_text())["status"] == "cancelled"  # collected
    assert not (sweep_dir / "3").exists()  # a job that never ran has no directory

    listed = run_cli([str(sweep_dir), "--format", "csv"], cwd=tmp_path, module="mnist_exp.runs")
    assert listed.returncode == 0, listed.stderr
    runs = pd.read_csv(pd.io.common.StringIO(listed.stdout))
    assert sorted(runs["status"]) == ["cancelled", "cancelled", "completed", "completed"]
    cancelled_only = run_cli([str(sweep_dir), "--status", "cancelled"], cwd=tmp_path, module="mnist_exp.runs")
    assert cancelled_only.returncode == 0 and cancelled_only.stdout.count("cancelled") == 2, cancelled_only.stderr
    report = run_cli([str(sweep_dir), "--out", str(tmp_path / "r.html")], cwd=tmp_path, module="mnist_exp.report")
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "r.html").read_text().count('"status":"cancelled"') == 2

    no_slurm = {"PATH": os.path.dirname(sys.executable)}  # a laptop with a copy of the sweep dir
    offline = statuses(sweep_dir, env=no_slurm)
    pd.testing.assert_frame_equal(offline[["status", "reason"]], table[["status", "reason"]])


@pytest.mark.slow
def test_a_waiting_submitter_killed_leaves_a_sweep_the_readers_still_follow(mnist_dir, tmp_path):
    """The login session dies with the launcher waiting: SLURM runs the jobs on, and a job
    killed on its node (SIGKILL: no word from the run) is shown failed, with SLURM's state."""
    sweep_dir = tmp_path / "s"
    proc = start(["-m", "epochs=2,300", "seed=1", "train_samples=2000", "test_samples=200", *SLURM,
                  f"hydra.sweep.dir={sweep_dir}"], tmp_path)
    array = None
    try:
        wait_for(sweep_dir / "slurm_jobs.json", 120)
        proc.kill()
        proc.communicate(timeout=30)
        ids = {job["num"]: job["slurm_id"] for job in json.loads((sweep_dir / "slurm_jobs.json").read_text())["jobs"]}
        array = ids[0].split("_")[0]
        wait_for(sweep_dir / "1" / "checkpoint.npz", 240)
        pid = int((sweep_dir / "1" / ".mnist_exp.lock").read_text().split()[1])  # "pid N on HOST since T"
        os.kill(pid, signal.SIGKILL)
        table = settled(sweep_dir)
    finally:
        proc.kill()
        if array:
            subprocess.run(["scancel", array], timeout=30)
    assert table.loc[0, "status"] == "completed"
    assert table.loc[1, "status"] == "failed", table.loc[1, "reason"]
    assert table.loc[1, "reason"] == f"SLURM job {ids[1]} ended FAILED; continue it with resume={sweep_dir / '1'}"
