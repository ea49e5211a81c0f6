"""The machine-readable summary of a run (summary.json): status, metrics, provenance."""

import json
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
from mnist_exp.config import Config, known_keys, validate
from mnist_exp.errors import UserError
from mnist_exp.files.reading import read_text, why
from mnist_exp.files.atomic import write_atomic
from mnist_exp.record.metrics import EpochMetrics, Tally
from mnist_exp.record.names import SUMMARY


def save_json(path: Path, data: Dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, allow_nan=True) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text))


@lru_cache(maxsize=1)
def versions() -> Dict[str, str]:
    import hydra
    import omegaconf

    return {"mnist_exp": mnist_exp.__version__, "python": platform.python_version(),
            "numpy": np.__version__, "hydra": hydra.__version__, "omegaconf": omegaconf.__version__}


@lru_cache(maxsize=1)
def runtime() -> Dict[str, Any]:
    """Where the run ran, and the BLAS threads it had (launchers limit them per job)."""
    from threadpoolctl import threadpool_info

    blas = [lib["num_threads"] for lib in threadpool_info() if lib.get("user_api") == "blas"]
    found = {"host": platform.node(), "pid": os.getpid(), "cpus": os.cpu_count(),
             "blas_threads": max(blas) if blas else None}
    if os.environ.get("SLURM_JOB_ID"):  # a job on a SLURM cluster: which one, where, how often requeued
        env = os.environ
        found["slurm"] = {"job_id": env["SLURM_JOB_ID"], "array_job_id": env.get("SLURM_ARRAY_JOB_ID"),
                          "array_task_id": env.get("SLURM_ARRAY_TASK_ID"), "node": env.get("SLURMD_NODENAME"),
                          "restart_count": int(env.get("SLURM_RESTART_COUNT") or 0)}
    return found


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


def _timestamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(seconds))


def _clean(value: Any) -> Any:
    """NaN and infinity become null: summary.json stays strict JSON after a divergence."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _row(metrics: EpochMetrics) -> Dict[str, Any]:
    return {k: _clean(v) for k, v in asdict(metrics).items()}


def load(run_dir: Path) -> Dict[str, Any]:
    path = run_dir / SUMMARY
    try:
        return json.loads(read_text(path))
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read a run summary ({why(e)})") from None


def load_config(run_dir: Path) -> Config:
    """The typed, checked config a run was started with, from its summary.json.

    Keys an older version wrote and this one lacks are ignored; a value of the wrong type or
    out of range is refused, naming the file (it was edited or damaged).
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    path = run_dir / SUMMARY
    saved = load(run_dir).get("config")
    if not isinstance(saved, dict):
        raise UserError(f"{path}: holds no config (the run failed before it started)")
    try:
        cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), known_keys(Config, saved)))
        return validate(cfg)
    except OmegaConfBaseException as e:
        raise UserError(f"{path}: its config is not valid ({str(e).splitlines()[0]})") from None
    except UserError as e:
        raise UserError(f"{path}: its config is not valid ({e})") from None


class SummaryWriter:
    """Keeps summary.json up to date as a run goes: rewritten atomically at each status change."""

    def __init__(self, cfg: Config, run_dir: Path, extra: Optional[Dict[str, Any]] = None):
        self.cfg, self.run_dir, self.extra = cfg, run_dir, extra or {}
        self.started = time.time()
        self.tally = Tally()  # the run's rows so far: count, last, best
        self.kept: Optional[EpochMetrics] = None  # the epoch whose weights the run keeps, once it ends
        self.weights_kept = True  # False: a run that diverged in its first epoch keeps no weights
        self.may_write = True  # a resume writes nothing until its first epoch ends
        self.ended = False  # how the run ended is recorded: nothing may overwrite it
        self.previous_status: Optional[str] = None  # of a resumed run, before this session
        self.data: Dict[str, Any] = {"dir": None, "checksums": {}}
        self.earlier_seconds = 0.0  # wall time of the sessions before a resume
        self.first_started_at: Optional[str] = None
        self.resumed: List[Dict[str, Any]] = []

    def resume_from(self, previous: Dict[str, Any]) -> None:
        """Carry the earlier sessions' wall time and history over, and note this resume."""
        self.earlier_seconds = previous.get("wall_seconds") or 0.0
        self.first_started_at = previous.get("started_at")
        self.may_write = False
        self.previous_status = previous.get("status")
        self.resumed = previous.get("resumed", []) + [{"at": _timestamp(self.started),
                                                        "after_epochs": previous.get("epochs_run", 0)}]
        self.extra = {k: v for k, v in self.extra.items() if v is not None}
        self.extra.setdefault("job", previous.get("job"))  # a resumed sweep job stays that job
        for origin in ("extends", "from_run"):  # an extension or a run from a record resumed stays one
            if previous.get(origin):
                self.extra.setdefault(origin, previous[origin])

    def build(self, status: str, reason: Optional[str] = None) -> Dict[str, Any]:
        result = build(self.cfg, self.run_dir, status, self.tally, self.started, self.data, reason, self.kept,
                       self.weights_kept)
        result["wall_seconds"] += self.earlier_seconds
        if self.resumed:
            result.update(started_at=self.first_started_at, resumed=self.resumed)
        result.update(self.extra)
        return result

    def save(self, status: str, reason: Optional[str] = None) -> Dict[str, Any]:
        result = self.build(status, reason)
        save_json(self.run_dir / SUMMARY, result)
        return result


def build(cfg: Config, run_dir: Path, status: str, tally: Tally, started: float,
          data: Dict[str, Any], reason: Optional[str] = None, kept: Optional[EpochMetrics] = None,
          weights_kept: bool = True) -> Dict[str, Any]:
    """The summary. `final` is the epoch whose weights the run keeps (weights.npz): the last,
    the one early stopping restored, or a diverged run's last finite one (None if it has none);
    `last` is always the last epoch."""
    final = (kept or tally.last) if weights_kept else None
    return {
        "status": status,  # running, completed, pruned, diverged, interrupted or failed
        "reason": reason,
        "run_name": run_dir.name,
        "name": cfg.name,
        "tags": list(cfg.tags),
        "run_dir": str(run_dir),
        "config": asdict(cfg),
        "seed": cfg.seed,
        "epochs_run": tally.count,
        "final": _row(final) if final else None,
        "last": _row(tally.last) if tally.last else None,
        "best": _row(tally.best) if tally.best else None,
        "wall_seconds": time.time() - started,
        "started_at": _timestamp(started),
        "versions": versions(),
        "runtime": runtime(),
        "data": data,
        "git_commit": git_commit(),
    }


def record_refusal(run_dir: Path, job: Optional[Dict[str, Any]], reason: str,
                   config: Optional[Dict[str, Any]] = None) -> None:
    """A sweep job refused before its run began: a record saying why, unless it has one."""
    if not (run_dir / SUMMARY).exists():
        save_json(run_dir / SUMMARY, {"status": "failed", "reason": reason, "job": job, "run_dir": str(run_dir),
                                      "config": config, "epochs_run": 0})


def record_lost(run_dir: Path, status: str, reason: str, job: Dict[str, Any]) -> None:
    """A job that ended outside the run's own handling (a dead worker, a job SLURM cancelled):
    its record says so, unless the run had recorded how it ended; a damaged one is replaced
    by what is known."""
    try:
        previous = load(run_dir) if (run_dir / SUMMARY).is_file() else {}
    except UserError:
        previous = {}
    if previous.get("status") in (None, "running", "interrupted"):
        previous.update(status=status, reason=reason, job=job, run_dir=str(run_dir))
        run_dir.mkdir(parents=True, exist_ok=True)
        save_json(run_dir / SUMMARY, previous)
