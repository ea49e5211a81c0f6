"""A SLURM sweep's jobs as SLURM knows them: what the readers show of jobs that never started
or that SLURM ended outside the run (cancelled, killed, out of memory, a lost node).

The launcher writes `slurm_jobs.json` into the sweep dir as it submits (each job's number,
overrides, config, directory and SLURM id). Nobody may be waiting for the jobs (wait=false),
so the readers ask SLURM (sacct, squeue) about the jobs whose own record has not ended, and
`summarize` keeps SLURM's answer in that file and in the lost jobs' summary.json (collect): a
copy of the sweep dir read where no SLURM command exists shows the state last collected.
"""

import json
import os
import shutil
import subprocess
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from filelock import FileLock

from mnist_exp.files.reading import read_text, why
from mnist_exp.record.names import CHECKPOINT
from mnist_exp.record.summary import save_json

RECORD = "slurm_jobs.json"
LOCK = ".slurm_jobs.lock"
OPEN = (None, "running", "interrupted")  # a run's own status that SLURM's word may overrule (as record_lost does)
WAITING = ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED", "RESIZING")
GOING = ("RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING")
SLURM_SECONDS = 20
# A job that left the queue without starting, of which sacct keeps no line: SLURM 22.05 keeps
# none of an array task cancelled while it waited.
GONE = "GONE"


def read(sweep_dir: Path) -> Optional[Dict[str, Any]]:
    """The sweep's record of its SLURM jobs, or None (none there; a damaged one, with a warning)."""
    path = Path(sweep_dir) / RECORD
    if not os.path.lexists(path):
        return None
    try:
        record = json.loads(read_text(path))
        if not isinstance(record, dict) or not isinstance(record.get("jobs"), list):
            raise ValueError("not a record of jobs")
        return record
    except (OSError, ValueError) as e:
        warnings.warn(f"{path}: cannot be read ({why(e)}); its jobs are shown from their own records", stacklevel=2)
        return None


def _locked(sweep_dir: Path) -> FileLock:
    """The record's writers (launches in threads or processes, summarize) take turns."""
    return FileLock(Path(sweep_dir) / LOCK)


def add_jobs(sweep_dir: Path, jobs: List[Dict[str, Any]], wait: bool) -> None:
    """The launcher's note of jobs it submitted (a search, a batched grid or a resume adds
    several times; a job submitted again replaces its earlier line)."""
    with _locked(sweep_dir):
        record = read(sweep_dir) or {"jobs": [], "states": {}}
        earlier = {j.get("num"): j for j in record["jobs"] if isinstance(j, dict)}
        for job in jobs:  # submitted again (a resume): its run's record is from an earlier SLURM job
            if job["num"] in earlier:
                job["earlier_ids"] = earlier[job["num"]].get("earlier_ids", []) + [earlier[job["num"]].get("slurm_id")]
        record["jobs"] = sorted([j for n, j in earlier.items() if n not in {job["num"] for job in jobs}] + jobs,
                                key=lambda j: j["num"])
        record["wait"] = wait
        record.setdefault("submitted_at", _now())
        save_json(Path(sweep_dir) / RECORD, record)


def ask_slurm(job_ids: Iterable[str]) -> Optional[Dict[str, str]]:
    """SLURM's state of each job id (`1234_5`, or `1234` for a plain job), or None when SLURM
    cannot be asked here. sacct knows ended jobs (it may lag a new one by seconds, and lists
    an array's waiting tasks as one `1234_[5-7%2]`); squeue knows the live ones exactly."""
    job_ids = sorted(set(job_ids))
    if not job_ids:
        return None
    arrays = sorted({i.split("_")[0] for i in job_ids})
    ended = _ask(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(arrays)])
    live = _ask(["squeue", "-h", "-r", "-o", "%i|%T", "-j", ",".join(arrays)])
    if ended is None and live is None:
        return None
    states: Dict[str, str] = {}
    for listed in (ended or [], live or []):
        grouped = [(i, st) for ids, st in listed if "[" in ids for i in _expand(ids)]
        single = [(ids, st) for ids, st in listed if "[" not in ids]
        states.update(grouped + single)  # a task's own line is newer than its array's waiting line
    if live is not None:  # not in the queue, and sacct's last word was that it waited (or none): gone
        queued = {ids for ids, _ in live}
        states.update({i: GONE for i in job_ids if i not in queued and states.get(i, WAITING[0]).split()[0] in WAITING})
    return {i: states[i] for i in job_ids if i in states}


def _ask(command: List[str]) -> Optional[List[tuple]]:
    """(job id, state) lines of a SLURM command, or None if it cannot answer here."""
    if not shutil.which(command[0]):
        return None
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=SLURM_SECONDS)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:  # squeue of jobs that left the queue long ago: none of them is live
        return [] if "Invalid job id specified" in out.stderr else None
    return [tuple(part.strip() for part in line.split("|", 1)) for line in out.stdout.splitlines() if "|" in line]


def _expand(ids: str) -> List[str]:
    """`1234_[1-3,7%2]` -> 1234_1, 1234_2, 1234_3, 1234_7."""
    array, _, tasks = ids.partition("_[")
    found = []
    for part in tasks.rstrip("]").split("%")[0].split(","):
        first, _, last = part.partition("-")
        if first.isdigit() and (not last or last.isdigit()):
            found += [f"{array}_{t}" for t in range(int(first), int(last or first) + 1)]
    return found


def job_states(sweep_dir: Path, record: Dict[str, Any], own: Dict[Path, Optional[str]],
               ask: bool = True) -> List[Dict[str, Any]]:
    """Each recorded job whose row SLURM's word decides: {num, overrides, config, dir, status,
    reason, started}. `own` maps each job dir that has a summary.json to the status it shows
    (None if unreadable); a job whose run recorded its end is left out."""
    jobs = [dict(j, dir=_job_dir(sweep_dir, j)) for j in record["jobs"] if isinstance(j, dict) and "num" in j]
    for job in jobs:  # a run recorded by an earlier SLURM job of a job submitted again has not started
        job["started"] = job["dir"] in own and not _earlier_run(job)
    open_jobs = [j for j in jobs if not j["started"] or own[j["dir"]] in OPEN]
    kept = {i: s for i, s in (record.get("states") or {}).items() if isinstance(s, dict)}
    known = {i: s.get("state") for i, s in kept.items()}
    unsettled = [j["slurm_id"] for j in open_jobs if j.get("slurm_id") and _going(known.get(j["slurm_id"]))]
    asked = ask_slurm(unsettled) if ask and unsettled else None  # an ended job's state does not change
    known.update(asked or {})
    states = []
    for job in open_jobs:
        started, job_id = job["started"], job.get("slurm_id")
        decided = _decide(job_id, known.get(job_id), started, job["dir"], own.get(job["dir"]))
        if not decided:
            continue
        status, reason = decided
        if asked is None and status in ("pending", "running") and job_id in kept:  # it may have moved on since
            reason += f" (as of {kept[job_id].get('checked_at')})"
        states.append({**job, "status": status, "reason": reason, "state": known.get(job_id)})
    return states


def collect(sweep_dir: Path, own: Dict[Path, Optional[str]]) -> None:
    """Ask SLURM now and keep its answer: in the record (for readers without SLURM) and, for a
    job that started and that SLURM ended, in its summary.json, as a waiting launcher would."""
    from mnist_exp.record.summary import record_lost

    with _locked(sweep_dir):
        record = read(sweep_dir)
        if record is None:
            return
        states = job_states(sweep_dir, record, own, ask=True)
        kept = record.setdefault("states", {})
        for job in states:
            if job["state"]:
                kept[job["slurm_id"]] = {"state": job["state"], "checked_at": _now()}
            if job["started"] and job["status"] in ("cancelled", "interrupted", "failed"):
                record_lost(job["dir"], job["status"], job["reason"], {"num": job["num"], "overrides": job["overrides"]})
        if states:
            save_json(Path(sweep_dir) / RECORD, record)


def _earlier_run(job: Dict[str, Any]) -> bool:
    """Whether a job submitted again (earlier_ids) has not started yet: its record is still the
    one an earlier SLURM job wrote (runtime.slurm), so SLURM's word on the new one decides."""
    if not job.get("earlier_ids"):
        return False
    try:
        slurm = json.loads(read_text(job["dir"] / "summary.json"))["runtime"]["slurm"]
        ran_as = f"{slurm['array_job_id']}_{slurm['array_task_id']}" if slurm.get("array_job_id") else slurm["job_id"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return ran_as != job.get("slurm_id")


def _going(state: Optional[str]) -> bool:
    """Whether a job with this last known state may still change it (unknown: it may)."""
    return not state or state.split()[0].rstrip("+") in WAITING + GOING


def _decide(job_id: Optional[str], state: Optional[str], started: bool, directory: Path,
            own: Optional[str] = None):
    """(status, reason) from SLURM's state, or None where the run's own record (`own`) stands.
    A run that recorded itself interrupted while SLURM still holds its job (a scancel's SIGTERM,
    the job not yet ended) is running until SLURM says how the job ended."""
    if not state:
        return None if started else ("pending", f"SLURM job {job_id} has not started (as far as is known here)")
    word = state.split()[0].rstrip("+")
    if word in WAITING:
        return "pending", f"SLURM job {job_id} is {state}" + (" (requeued: it resumes its run)" if started else "")
    if word in GOING:
        if started and own == "interrupted":
            return "running", f"SLURM job {job_id} is {state}: its run was interrupted, the job has not ended yet"
        return None if started else ("running", f"SLURM job {job_id} is {state}, starting")
    if word == GONE:
        return None if started else ("cancelled", f"SLURM job {job_id} left the queue before it started "
                                     "(cancelled while it waited; SLURM keeps no record of it)")
    if word == "COMPLETED":
        return None if started else ("failed", f"SLURM job {job_id} ended COMPLETED but its run left no record")
    reason = f"SLURM job {job_id} ended {state}" + ("" if started else " before it started")
    if (directory / CHECKPOINT).is_file():
        reason += f"; continue it with resume={directory}"
    if word == "CANCELLED":
        return "cancelled", reason
    return ("interrupted" if word in ("TIMEOUT", "PREEMPTED", "DEADLINE") else "failed"), reason


def _job_dir(sweep_dir: Path, job: Dict[str, Any]) -> Path:
    """The job's directory, kept relative to the sweep dir so a copied sweep dir reads the same."""
    return (Path(sweep_dir) / str(job.get("dir", job["num"]))).resolve()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
