#!/usr/bin/env python
"""An Optuna search on one budget, without pruning and with the median pruner, on one worker
and on two (joblib): time to the best validation accuracy, the accuracy reached, and the cost.

    MNIST_EXP_DATA_DIR=../shared/data/mnist python scripts/measure_search.py [--trials 30]
        [--epochs 10] [--train 10000] [--only none-1,median-2]

Each setting is one `python -m mnist_exp -m +search=optuna` (lr and hidden_size, the preset's
seed) into its own sqlite storage; the figures come from that storage, read with Optuna's API:
'to best' is from the first trial's start to the end of the trial that reached the best value.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = {"none-1": ("none", 1), "median-1": ("median", 1), "none-2": ("none", 2), "median-2": ("median", 2)}


def run(pruner: str, workers: int, args, workdir: Path) -> dict:
    import optuna

    storage = f"sqlite:///{workdir / f'{pruner}-{workers}.db'}"
    launcher = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={workers}"] if workers > 1 else []
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mnist_exp", "-m", "+search=optuna", f"hydra.sweeper.n_trials={args.trials}",
                           f"epochs={args.epochs}", f"train_samples={args.train}", f"hydra.sweeper.pruner={pruner}",
                           f"hydra.sweeper.storage={storage}", f"hydra.sweep.dir={workdir / f'{pruner}-{workers}'}",
                           *launcher], cwd=workdir, env=env, capture_output=True, text=True, timeout=7200)
    wall = time.perf_counter() - began
    if done.returncode not in (0, 1):  # 1: some trials failed or diverged (a high lr), as they may
        sys.exit(f"measure_search: the search failed: {done.stderr.strip()[-500:]}")
    trials = optuna.load_study(study_name="mnist_exp", storage=storage).get_trials()
    first = min(t.datetime_start for t in trials)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    best = max(complete, key=lambda t: t.value)
    return {"setting": f"pruner={pruner} workers={workers}", "wall_s": wall,
            "to_best_s": (best.datetime_complete - first).total_seconds(), "best_val": best.value,
            "its_test": best.user_attrs.get("test_accuracy"), "best_trial": best.number,
            "pruned": sum(t.state.name == "PRUNED" for t in trials),
            "failed": sum(t.state.name == "FAIL" for t in trials),
            "epochs": sum(len(t.intermediate_values) for t in trials)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train", type=int, default=10000)
    parser.add_argument("--only", default=",".join(SETTINGS), help="settings to run: " + ", ".join(SETTINGS))
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="measure_search-"))
    print(f"{args.trials} trials, {args.epochs} epochs on {args.train} images; records in {workdir}")
    print(f"{'setting':<28}{'wall s':>8}{'to best s':>11}{'best val':>10}{'its test':>10}{'trial':>7}"
          f"{'pruned':>8}{'failed':>8}{'epochs':>8}")
    for name in args.only.split(","):
        r = run(*SETTINGS[name], args, workdir)
        print(f"{r['setting']:<28}{r['wall_s']:>8.1f}{r['to_best_s']:>11.1f}{r['best_val']:>10.4f}"
              f"{r['its_test']:>10.4f}{r['best_trial']:>7}{r['pruned']:>8}{r['failed']:>8}{r['epochs']:>8}", flush=True)


if __name__ == "__main__":
    main()
