"""`python -m mnist_exp -m resume=SWEEP_DIR`: finish a sweep in its own directory.

The sweep is its multirun.yaml: the command line is rebuilt from the overrides recorded
there (hydra.sweep.dir set to the sweep's own), so the sweeper plans the same jobs with the
same numbers. Each job's record then says what is left to do (job_state): completed jobs are
not launched at all (Hydra would rewrite their .hydra/), interrupted ones continue from their
checkpoint, ones that never finished an epoch start again, failed ones wait for
retry_failed=true, diverged ones stay (they would diverge again). Nothing here depends on the
launcher: the grid sweeper (launchers/grid_resume.py) and the Optuna sweeper call it, whichever
launcher runs the jobs; a SLURM sweep submitted without waiting is refused while SLURM still
queues or runs its jobs (its record, slurm_jobs.json, names them), as they would run twice.
"""

import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from mnist_exp.cli import invocation
from mnist_exp.errors import ConfigError

log = logging.getLogger(__name__)

MULTIRUN = "multirun.yaml"
RETRY = "retry_failed"
ENV = "MNIST_EXP_RESUMED_SWEEP"  # set in each job of a resumed sweep (hydra.job.env_set)
SET_ASIDE = ".set-aside"  # a restarted job's earlier files go to <job>/.set-aside-<time>/
# What may be typed with the resume besides the sweep's own overrides: how many jobs run at once.
PARALLELISM = ("hydra.launcher.n_jobs", "hydra.launcher.array_parallelism", "hydra.sweeper.n_jobs")
GRID_SWEEPER = "hydra_plugins.mnist_exp_launchers.grid_resume.ResumedGrid"
DONE = ("completed", "pruned")


@dataclass
class Resume:
    sweep_dir: Path
    retry_failed: bool


def command_line(argv: List[str]) -> Optional[List[str]]:
    """The command line that resumes the sweep `-m resume=SWEEP_DIR` names, or None when `argv`
    asks for no such thing. Refuses (ConfigError) what would change the sweep; claims its
    directory, so a sweep another process runs is refused before anything is written."""
    from hydra._internal.utils import get_args_parser

    try:
        args = get_args_parser().parse_args(argv)
    except SystemExit:
        return None  # Hydra says what is wrong with it
    typed = {_key(o): o.split("=", 1)[1] if "=" in o else "" for o in args.overrides}
    resume = typed.get("resume")
    sweep_resume = bool(args.multirun and resume and not _is_sweep(resume))
    if RETRY in typed and not sweep_resume:
        raise ConfigError(f"{RETRY} is given only with -m resume=SWEEP_DIR (it reruns a resumed sweep's failed jobs)")
    if not sweep_resume:
        return None
    target = Path(resume).expanduser().absolute()
    if not (target / MULTIRUN).is_file():
        if (target / "summary.json").is_file():
            return None  # -m resume=RUN_DIR: a one-job sweep that continues a run, as before
        raise ConfigError(f"resume={resume}: not a sweep directory (no {MULTIRUN} there); "
                          "resume=RUN_DIR without -m continues a single run")
    flags = [flag for flag, on in (("--cfg", args.cfg), ("--info", args.info), ("--help", args.help),
                                   ("--hydra-help", args.hydra_help),
                                   ("--shell-completion", args.shell_completion)) if on]
    if flags:  # the sweep runs as it was started: its own config
        raise ConfigError(f"resume={resume}: {flags[0]} cannot be given with -m resume=SWEEP_DIR")
    retry = _retry(typed.get(RETRY))
    recorded = _recorded(target, resume)
    if args.config_dir and [str(Path(args.config_dir).expanduser().absolute())] != recorded["config_dir"]:
        raise ConfigError(f"resume={resume}: --config-dir {args.config_dir} is not the sweep's own "
                          f"({', '.join(recorded['config_dir']) or 'none'}): its presets are read from there")
    given = [o for o in args.overrides if _key(o) not in ("resume", RETRY)]
    _check_unchanged(given, recorded, resume)
    _check_no_live_slurm_jobs(target, resume)
    from mnist_exp.files import ownership

    ownership.claim(target, fresh=False, what="sweep")  # held to the end; a live owner is refused
    invocation.current().resuming = Resume(target, retry)
    config_dir = [f"--config-dir={d}" for d in recorded["config_dir"]]  # the user's presets, as the sweep read them
    return ["--multirun", *config_dir, *_rebuilt(recorded, given, target)]


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _is_sweep(value: str) -> bool:
    """resume=A,B (or a sweep function): a sweep of single-run resumes, as before."""
    return "," in value or value.split("(", 1)[0] in ("range", "choice", "glob", "interval", "tag")


def _retry(value: Optional[str]) -> bool:
    if value is None:
        return False
    if value.lower() not in ("true", "false"):
        raise ConfigError(f"{RETRY}={value} is not true or false")
    return value.lower() == "true"


def _recorded(target: Path, resume: str) -> Dict[str, List[str]]:
    """The overrides the sweep was started with: {'task': [...], 'hydra': [...]}."""
    import yaml

    from mnist_exp.files.reading import read_text

    try:
        hydra_cfg = yaml.safe_load(read_text(target / MULTIRUN))["hydra"]
        recorded = {part: [str(o) for o in hydra_cfg["overrides"].get(part) or []] for part in ("task", "hydra")}
        grid = "basic_sweeper" in str(hydra_cfg["sweeper"]["_target_"])
        recorded["config_dir"] = [str(source["path"]) for source in hydra_cfg["runtime"]["config_sources"]
                                  if source.get("provider") == "command-line" and source.get("schema") == "file"]
    except Exception as e:  # noqa: BLE001 (damaged, not YAML, not a mapping: the sweep cannot be rebuilt)
        raise ConfigError(f"resume={resume}: {target / MULTIRUN} cannot be read "
                          f"({e.__class__.__name__}: {str(e)[:200]}), so the sweep cannot be rebuilt") from None
    if grid:
        recorded["sweeper"] = [f"hydra.sweeper._target_={GRID_SWEEPER}"]
    return recorded


def _check_unchanged(given: List[str], recorded: Dict[str, List[str]], resume: str) -> None:
    """A resumed sweep is the same sweep: besides parallelism, only its own overrides again."""
    same = set(recorded["task"]) | set(recorded["hydra"])
    for override in given:
        if override not in same and _key(override) not in PARALLELISM:
            raise ConfigError(f"resume={resume}: a resumed sweep keeps its own settings, {override} would change "
                              f"them (only {', '.join(PARALLELISM)} and {RETRY}=true may be given)")


def _check_no_live_slurm_jobs(target: Path, resume: str) -> None:
    """A sweep submitted to SLURM without waiting (wait=false) holds no lock while its jobs queue
    and run: resuming it then would submit them a second time."""
    from mnist_exp.analysis import slurm_jobs

    record = slurm_jobs.read(target) or {}
    ids = [j["slurm_id"] for j in record.get("jobs", []) if isinstance(j, dict) and j.get("slurm_id")]
    states = (slurm_jobs.ask_slurm(ids) if ids else None) or {}
    live = sorted(i for i, state in states.items()
                  if state and state.split()[0].rstrip("+") in slurm_jobs.WAITING + slurm_jobs.GOING)
    if live:
        raise ConfigError(f"resume={resume}: {len(live)} of the sweep's jobs are still queued or running on SLURM "
                          f"({live[0]} is {states[live[0]]}); wait for them (python -m mnist_exp.summarize "
                          f"{target} shows them), or scancel them, then resume")


def _rebuilt(recorded: Dict[str, List[str]], given: List[str], target: Path) -> List[str]:
    """The sweep's overrides, in its own directory, with the parallelism typed now."""
    replaced = {_key(o) for o in given if _key(o) in PARALLELISM} | {"hydra.sweep.dir", "hydra.mode"}
    kept = [o for o in recorded["hydra"] if _key(o) not in replaced]
    return [*recorded["task"], *kept, *recorded.get("sweeper", []), *(o for o in given if _key(o) in PARALLELISM),
            f"hydra.sweep.dir={_quoted(str(target))}", f"++hydra.job.env_set.{ENV}=1"]


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def continues(job_dir: Path) -> bool:
    """A job of a resumed sweep whose run goes on from its checkpoint (the others start afresh)."""
    from mnist_exp.record import CHECKPOINT, SUMMARY

    return os.environ.get(ENV) == "1" and (job_dir / CHECKPOINT).is_file() and (job_dir / SUMMARY).is_file()


def set_aside_names(job_dir: Path) -> Tuple[str, ...]:
    """The folders a restarted job's earlier files were moved to (its fresh start ignores them)."""
    try:
        return tuple(p.name for p in job_dir.iterdir() if p.name.startswith(SET_ASIDE))
    except OSError:
        return ()


def job_state(job_dir: Path) -> str:
    """What a resume does with a job: done (completed, pruned), diverged, failed (failed, or an
    unreadable record), continue (stopped with a checkpoint), restart (stopped before its first
    epoch ended) or new (never started)."""
    from mnist_exp.record import CHECKPOINT
    from mnist_exp.record.summary import load
    from mnist_exp.errors import UserError

    if not job_dir.is_dir() or not _started(job_dir):
        return "new"
    try:
        status = load(job_dir).get("status")
    except (UserError, AttributeError, OSError):
        return "failed" if (job_dir / "summary.json").exists() else "restart"
    if status in DONE:
        return "done"
    if status in ("failed", "diverged"):
        return status
    return "continue" if (job_dir / CHECKPOINT).is_file() else "restart"


def _started(job_dir: Path) -> bool:
    """Anything there beyond what Hydra writes before the job runs (.hydra/, the log, the lock)."""
    from mnist_exp.files.ownership import LOCK

    return any(p.name not in (".hydra", "mnist_exp.log", LOCK) and not p.name.startswith(SET_ASIDE)
               for p in job_dir.iterdir())


def to_run(jobs: Sequence[Tuple[int, List[str], Path]], retry_failed: bool) -> List[Tuple[int, List[str]]]:
    """The jobs a resume launches, in order; restarted ones get their earlier files set aside.
    Logs what it found."""
    states = {num: job_state(directory) for num, _, directory in jobs}
    counts = {s: sum(1 for v in states.values() if v == s)
              for s in ("done", "diverged", "failed", "continue", "restart", "new")}
    log.info("resuming the sweep: %d done and %d diverged (left as they are), %d failed (%s), %d to continue "
             "from their checkpoint, %d to start again, %d never started", counts["done"], counts["diverged"],
             counts["failed"], "rerun: retry_failed=true" if retry_failed else "kept; retry_failed=true reruns them",
             counts["continue"], counts["restart"], counts["new"])
    chosen = []
    for num, overrides, directory in jobs:
        state = states[num]
        if state in ("done", "diverged") or (state == "failed" and not retry_failed):
            continue
        if state in ("restart", "failed"):
            set_aside(directory)
        chosen.append((num, list(overrides)))
    return chosen


def set_aside(job_dir: Path) -> Path:
    """Move a job's earlier record (all but .hydra/ and the lock) into a hidden folder beside it:
    nothing is lost, and the job starts in a directory as new (load_runs skips hidden folders)."""
    from mnist_exp.files.ownership import LOCK

    aside = job_dir / f"{SET_ASIDE}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    aside.mkdir()
    for path in job_dir.iterdir():
        if path.name not in (".hydra", LOCK) and not path.name.startswith(SET_ASIDE):
            shutil.move(str(path), str(aside / path.name))
    log.info("job %s: its earlier record is kept in %s", job_dir.name, aside)
    return aside


def workers(launcher_cfg: Any) -> int:
    """Jobs at once: joblib's n_jobs, SLURM's array_parallelism, 1 for the basic launcher."""
    target = str(launcher_cfg.get("_target_", ""))
    if "joblib" in target:
        wanted = launcher_cfg.get("n_jobs") or -1
        return max(1, wanted if wanted > 0 else (os.cpu_count() or 1) + 1 + wanted)
    if "submitit" in target:
        return max(1, int(launcher_cfg.get("array_parallelism") or 1))
    return 1


def launch_each(launch: Callable[[List[str], int], Any], jobs: List[Tuple[int, List[str]]], at_once: int) -> list:
    """Launch each job under its own number (launch(overrides, num)), `at_once` at a time: one
    by one in this thread (the basic launcher's jobs keep their signal handlers), else from
    worker threads, each launching one job as the Optuna sweeper does."""
    if at_once <= 1:
        return [launch(overrides, num) for num, overrides in jobs]
    results: Dict[int, Any] = {}
    queue = list(jobs)
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if not queue:
                    return
                num, overrides = queue.pop(0)
            try:
                results[num] = launch(overrides, num)
            except BaseException as e:  # noqa: BLE001 (handed back to the caller's thread)
                results[num] = e

    threads = [threading.Thread(target=work, daemon=True) for _ in range(min(at_once, len(jobs)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for num, _ in jobs:
        if isinstance(results.get(num), BaseException):
            raise results[num]
    return [results[num] for num, _ in jobs]
