#!/usr/bin/env python
"""Per-job overhead of sweeping on SLURM against Hydra's basic launcher, side by side.

    sudo scripts/slurm_cluster.sh up
    MNIST_EXP_DATA_DIR=../shared/data/mnist python scripts/bench_slurm.py [--jobs 8] [--pairs 2]

Runs the same grid of default-size jobs (lr x seed) with the basic launcher (one after another
in one process) and with hydra/launcher=submitit_slurm on the cluster, alternating the two,
and prints each wall time and the SLURM overhead per job. The cluster's scheduler interval
(SchedulerParameters sched_interval) is read from scontrol and printed with the figures: most
of the overhead is waiting for it, submitit's sacct polling and each job's Python start-up.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def sweep(launcher_args, jobs: int, workdir: Path) -> float:
    seeds = ",".join(str(s) for s in range(1, jobs // 2 + 1))
    sweep_dir = Path(tempfile.mkdtemp(dir=workdir)) / "sweep"
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mnist_exp", "-m", "lr=0.005,0.01", f"seed={seeds}",
                           *launcher_args, f"hydra.sweep.dir={sweep_dir}"], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=1800)
    took = time.perf_counter() - began
    if done.returncode != 0:
        sys.exit(f"bench_slurm: the sweep failed: {done.stderr.strip()[-500:]}")
    return took


def scheduler_interval() -> str:
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30).stdout
    line = next((line for line in out.splitlines() if line.startswith("SchedulerParameters")), "")
    return line.split("=", 1)[-1].strip() or "default (60 s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8, help="jobs in the grid (even; default 8)")
    parser.add_argument("--pairs", type=int, default=2, help="basic/SLURM pairs to run (default 2)")
    parser.add_argument("--partition", default="debug")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        basic, slurm = [], []
        for _ in range(args.pairs):
            basic.append(sweep([], args.jobs, Path(tmp)))
            slurm.append(sweep(["hydra/launcher=submitit_slurm", f"hydra.launcher.partition={args.partition}"],
                               args.jobs, Path(tmp)))
    overhead = [(s - b) / args.jobs for b, s in zip(basic, slurm)]
    figures = {"jobs": args.jobs, "basic_seconds": basic, "slurm_seconds": slurm,
               "slurm_overhead_per_job_seconds": overhead, "scheduler_parameters": scheduler_interval(),
               "note": "SLURM jobs run in parallel (one per CPU), the basic launcher's one after another"}
    print(f"{args.jobs} default-size jobs; SchedulerParameters: {figures['scheduler_parameters']}")
    for b, s, o in zip(basic, slurm, overhead):
        print(f"  basic {b:6.1f} s   slurm {s:6.1f} s   overhead {o:+5.2f} s per job")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
