"""The command line: Hydra composes and checks the config, then a plain function runs it.

Errors a user can fix (bad keys or values, data problems) end the program with one line
on stderr and a non-zero exit code, never a traceback. Set HYDRA_FULL_ERROR=1 to see one."""

import gc
import os
import sys
from pathlib import Path
from typing import Optional, Tuple

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from mnist_exp.cli import dir_guard, invocation, sweep_resume
from mnist_exp.cli.command_line import check_command_line
from mnist_exp.cli.dir_guard import Refused
from mnist_exp.cli.exits import (EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_SWEEP_FAILED, EXIT_USER_ERROR, fail,
                                 missing_extra, one_line)
from mnist_exp.cli.task import hydra_main
from mnist_exp.config import register_launchers
from mnist_exp.errors import UserError, record_error
from mnist_exp.runner.interrupts import Interrupted, RunStopped, ignore_further


def main() -> None:
    """The program: a run, a sweep, or one line saying what was wrong.

    gc.freeze() keeps Python's cycle collector off the objects made so far: a full collection
    walks every tracked object, and the interpreter runs several as it exits. With NumPy,
    Hydra and matplotlib loaded, that took ~0.2 s of a 1.5 s default run (measured). Those
    objects live to the end anyway; refcounting still frees everything as usual.
    """
    gc.freeze()
    try:
        _main()
    finally:
        gc.freeze()


def _main() -> None:
    register_launchers()
    run = invocation.begin()
    if os.environ.get("HYDRA_FULL_ERROR") == "1":  # the user asked for full tracebacks
        sys.argv[1:] = check_command_line(sys.argv[1:])
        _resumed_sweep()
        hydra_main()
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's printer
    try:
        sys.argv[1:] = check_command_line(sys.argv[1:])
        _resumed_sweep()
        hydra_main()
        if run.sweep_dir is not None:
            sys.exit(0 if run.detached else report_sweep(run.sweep_dir))  # detached: the launcher said where
        if run.failures:
            dir_guard.discard_unused()  # a run refused before it started leaves nothing behind
            for code, message in run.failures:
                fail(message, code)
            sys.exit(max(code for code, _ in run.failures))
    except (UserError, Refused) as e:
        dir_guard.discard_unused()
        sys.exit(fail(str(e), getattr(e, "exit_code", EXIT_USER_ERROR)))
    except (HydraException, OmegaConfBaseException, ImportError) as e:  # before OSError: a missing config is both
        dir_guard.discard_unused()
        sys.exit(fail(missing_extra(str(e)) or one_line(e), EXIT_USER_ERROR))
    except BrokenPipeError:  # --help or --cfg piped into head: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit must not fail
        sys.exit(EXIT_BROKEN_PIPE)
    except OSError as e:  # Hydra's own writes (.hydra/, the log) into a full or read-only place
        error = record_error(e, "the run directory")
        sys.exit(fail(str(error), error.exit_code))
    except ValueError as e:
        if "integer string conversion" in str(e):  # Python's guard, met while Hydra parses an override
            sys.exit(fail("an override holds an integer of over 4300 digits; no key takes such a number",
                          EXIT_USER_ERROR))
        raise
    except KeyboardInterrupt as e:
        ignore_further()
        if run.sweep_dir is not None:
            report_sweep(run.sweep_dir, stopped=True)
        sys.exit(fail(*_stopped(e, run.sweep_dir)))
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)


def _resumed_sweep() -> None:
    """-m resume=SWEEP_DIR: the command line becomes the sweep's own (cli/sweep_resume.py)."""
    rebuilt = sweep_resume.command_line(sys.argv[1:])
    if rebuilt is not None:
        sys.argv = [sys.argv[0], *rebuilt]


def _stopped(e: KeyboardInterrupt, sweep_dir: Optional[Path]) -> Tuple[str, int]:
    """The line and exit code for a Ctrl-C or signal: what was kept, and how to go on (a sweep
    goes on where it stopped, its other jobs too)."""
    cause = e.cause if isinstance(e, RunStopped) else e
    how = f" by {cause}" if isinstance(cause, Interrupted) else ""
    where = e.resume_from if isinstance(e, RunStopped) else None
    if sweep_dir is not None:
        advice = f"; continue the sweep with python -m mnist_exp -m resume={sweep_dir}"
    elif isinstance(e, RunStopped) and e.ended:
        advice = f" after the run ended; its record in {where} is complete"
    elif where:
        advice = f"; finished epochs are kept, continue with resume={where}"
    else:
        advice = "; no epoch had finished, so there is nothing to resume"
    return f"interrupted{how}{advice}", cause.exit_code if isinstance(cause, Interrupted) else EXIT_INTERRUPTED


def report_sweep(sweep_dir: Path, stopped: bool = False) -> int:
    """One line per job that did not complete, or never started; exit code 1 if any, else 0.
    A sweep that was `stopped` (Ctrl-C) gets its comparison figure drawn here."""
    from mnist_exp.analysis.selection import best_line
    from mnist_exp.analysis.summarize import SUMMARY_CSV, planned_jobs, started_jobs, write_summary

    table = write_summary(sweep_dir, figure=stopped)
    keys = table.attrs.get("keys", [])
    table = table[table["status"] != "pending"]  # the never-started ones are counted from the plan
    bad = table[~table["status"].isin(["completed", "pruned"])]  # a pruned trial ended as its search wanted
    planned = planned_jobs(sweep_dir) or []
    started = started_jobs(table)
    never = [(num, overrides) for num, overrides in enumerate(planned) if num not in started]
    total = max(len(planned), len(table))
    pruned = int((table["status"] == "pruned").sum())
    print(f"sweep of {total} jobs: {len(table) - len(bad) - pruned} completed" + (f", {pruned} pruned" if pruned else "")
          + (f", {len(never)} never started" if never else "") + f"; summary in {sweep_dir / SUMMARY_CSV}")
    best = best_line(table, keys)
    if best:
        print(best)
    for _, row in bad.iterrows():
        fail(f"job {row['job']} {row['status']}: {row['reason']}", EXIT_SWEEP_FAILED)
    for num, overrides in never:
        fail(f"job {num} never started" + (f" ({overrides})" if overrides else ""), EXIT_SWEEP_FAILED)
    return EXIT_SWEEP_FAILED if len(bad) or never else 0
