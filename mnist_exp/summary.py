"""The machine-readable summary of a run (summary.json): status, metrics, provenance."""

import math
import os
import platform
import subprocess
import time
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

import mnist_exp
from mnist_exp.config import Config
from mnist_exp.record import SUMMARY, save_json
from mnist_exp.train import EpochMetrics


def versions() -> Dict[str, str]:
    import hydra
    import omegaconf

    return {"mnist_exp": mnist_exp.__version__, "python": platform.python_version(),
            "numpy": np.__version__, "hydra": hydra.__version__, "omegaconf": omegaconf.__version__}


def runtime() -> Dict[str, Any]:
    """Where the run ran, and the BLAS threads it had (launchers limit them per job)."""
    from threadpoolctl import threadpool_info

    blas = [lib["num_threads"] for lib in threadpool_info() if lib.get("user_api") == "blas"]
    return {"host": platform.node(), "pid": os.getpid(), "cpus": os.cpu_count(),
            "blas_threads": max(blas) if blas else None}


@lru_cache(maxsize=1)
def git_commit() -> Optional[str]:
    """The commit of the code that ran, when it runs from a git checkout (else None)."""
    source = Path(mnist_exp.__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _clean(value: Any) -> Any:
    """NaN and infinity become null: summary.json stays strict JSON after a divergence."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _row(metrics: EpochMetrics) -> Dict[str, Any]:
    return {k: _clean(v) for k, v in asdict(metrics).items()}


class SummaryWriter:
    """Keeps summary.json up to date as a run goes: rewritten atomically at each status change."""

    def __init__(self, cfg: Config, run_dir: Path, extra: Optional[Dict[str, Any]] = None):
        self.cfg, self.run_dir, self.extra = cfg, run_dir, extra or {}
        self.started = time.time()
        self.rows: List[EpochMetrics] = []
        self.data: Dict[str, Any] = {"dir": None, "checksums": {}}

    def save(self, status: str, reason: Optional[str] = None) -> Dict[str, Any]:
        result = build(self.cfg, self.run_dir, status, self.rows, self.started, self.data, reason)
        result.update(self.extra)
        save_json(self.run_dir / SUMMARY, result)
        return result


def build(cfg: Config, run_dir: Path, status: str, rows: List[EpochMetrics], started: float,
          data: Dict[str, Any], reason: Optional[str] = None) -> Dict[str, Any]:
    finite = [r for r in rows if r.finite]
    best = max(finite, key=lambda r: (r.test_accuracy, -r.epoch), default=None)
    return {
        "status": status,  # running, completed, diverged, interrupted or failed
        "reason": reason,
        "run_name": run_dir.name,
        "run_dir": str(run_dir),
        "config": asdict(cfg),
        "seed": cfg.seed,
        "epochs_run": len(rows),
        "final": _row(rows[-1]) if rows else None,
        "best": _row(best) if best else None,
        "wall_seconds": time.time() - started,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "versions": versions(),
        "runtime": runtime(),
        "data": data,
        "git_commit": git_commit(),
    }
