"""Rerun a recorded run and compare the two: `python -m mnist_exp.reproduce RUN_DIR`.

The rerun is `python -m mnist_exp from_run=RUN_DIR` (the config summary.json records, the data
it records, checked by checksum) into a new run directory: under outputs/ of the working
directory, as any run, or --out. Then metrics.csv (every column but `seconds`), weights.npz
(array by array, bit for bit), confusion.csv and summary.json's status and per-class results
are compared. Exit 0 and a line saying "identical"; exit 1 and the first difference; exit 2 for
bad input. A run recorded by another commit of the code is a warning, naming both commits.
Only a run that ended on its own (completed or diverged) is reproduced: an interrupted,
failed or pruned one has no end to compare with.
"""

import argparse
import datetime
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

from mnist_exp.analysis import liveness, record_diff
from mnist_exp.config import override_value
from mnist_exp.data.datasets import ROLES
from mnist_exp.errors import UserError
from mnist_exp import record
from mnist_exp.record import summary

PROG = "python -m mnist_exp.reproduce"
REPRODUCIBLE = ("completed", "diverged")
ADVICE = {"interrupted": "finish it first with python -m mnist_exp resume={run}",
          "failed": "it never finished an epoch it could keep: there is nothing to compare with",
          "pruned": "its Optuna search stopped it, and a rerun alone would not stop there"}


def check_record(run_dir: Path) -> Dict[str, Any]:
    """The run's summary, once the record is whole and ended; ValueError/UserError (one line) if not."""
    if not run_dir.exists():
        raise ValueError(f"{run_dir}: no such directory")
    if not run_dir.is_dir():
        raise ValueError(f"{run_dir}: not a directory (give a run directory)")
    if not (run_dir / record.SUMMARY).exists():
        if (run_dir / "multirun.yaml").exists():
            raise ValueError(f"{run_dir}: a sweep directory, not one run: give one of its jobs, e.g. {run_dir / '0'}")
        raise ValueError(f"{run_dir}: not a run directory (no summary.json)")
    recorded = summary.load(run_dir)
    status = recorded.get("status")
    if status == "running":
        owner = liveness.owner(run_dir)
        if owner:
            raise ValueError(f"{run_dir}: the run is still running ({owner}): reproduce it once it has ended")
        status = "interrupted"  # killed without a word
    if status not in REPRODUCIBLE:
        advice = ADVICE.get(status, "only a completed or diverged run can be reproduced").format(run=run_dir)
        raise ValueError(f"{run_dir}: the run is {status}: {advice}")
    cfg = summary.load_config(run_dir)
    _check_checksums(run_dir, recorded, cfg)
    rows = len(record.read_metrics(run_dir / record.METRICS))
    if rows != recorded.get("epochs_run"):
        raise ValueError(f"{run_dir}: a damaged record: metrics.csv holds {rows} complete epochs, summary.json "
                         f"says {recorded.get('epochs_run')}")
    if recorded.get("final") is not None:
        record.load_weights(run_dir / record.WEIGHTS)  # its own one-line refusal if damaged
    if recorded.get("per_class") and not record_diff.confusion_matrix(run_dir / record.CONFUSION):
        raise ValueError(f"{run_dir / record.CONFUSION}: a damaged record: not a confusion matrix (a 'true' column, "
                         "then one count per class, one row per class)")
    return recorded


def _check_checksums(run_dir: Path, recorded: Dict[str, Any], cfg) -> None:
    """The data the run read (summary.json's checksums) is the data its config names: the rerun,
    which checks its files against the config, then reads the same bytes."""
    checksums = (recorded.get("data") or {}).get("checksums") or {}
    for role in ROLES:
        spec = getattr(cfg.data, role)
        if spec.name in checksums and checksums[spec.name] != spec.md5:
            raise ValueError(f"{run_dir / record.SUMMARY}: a damaged record: the data checksums it records "
                             f"({spec.name}: {checksums[spec.name]}) are not its config's (data.{role}.md5 = {spec.md5})")


def code_warnings(recorded: Dict[str, Any], run_dir: Path) -> List[str]:
    """Another code version (git commit), or another NumPy, may give other numbers: said, not refused."""
    lines = []
    then, now = recorded.get("git_commit"), summary.git_commit()
    if then != now:
        lines.append(f"{run_dir} ran at commit {then or 'unknown (not recorded)'}; this code is at commit "
                     f"{now or 'unknown (not a git checkout)'}: the numbers may differ")
    numpy_then, numpy_now = (recorded.get("versions") or {}).get("numpy"), summary.versions()["numpy"]
    if numpy_then and numpy_then != numpy_now:
        lines.append(f"{run_dir} ran with NumPy {numpy_then}, this is NumPy {numpy_now}: the numbers may differ")
    return lines


def default_out() -> Path:
    """A new run's directory, as conf/config.yaml names one: outputs/DATE/TIME.microseconds."""
    now = datetime.datetime.now()
    return Path("outputs") / now.strftime("%Y-%m-%d") / now.strftime("%H-%M-%S.%f")


BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def rerun(run_dir: Path, out: Path, recorded: Dict[str, Any], data_dir: Any = None) -> int:
    """The rerun, as a user would start it (its lines on this console); its exit code. It gets
    the BLAS threads the run had: a matrix product split over other threads can sum in another
    order, and weights then differ in their last bits (measured: 1 thread against 2, batches of
    64). Ctrl-C reaches it too, and is waited for: it records itself as interrupted."""
    args = [sys.executable, "-m", "mnist_exp", f"from_run={override_value(str(run_dir.resolve()))}",
            f"hydra.run.dir={override_value(str(out))}"]
    if data_dir is not None:
        args.append(f"data.dir={override_value(str(Path(data_dir).resolve()))}")
    env = dict(os.environ)
    threads = (recorded.get("runtime") or {}).get("blas_threads")
    if isinstance(threads, int) and threads >= 1:
        env.update({name: str(threads) for name in BLAS_THREADS})
    child = subprocess.Popen(args, env=env)
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.send_signal(signal.SIGINT)  # if only this process was signalled
        child.wait()
        raise


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0][:-1])
    parser.add_argument("run_dir", type=Path, help="a run directory (a sweep's job directory too)")
    parser.add_argument("--out", type=Path, help="the rerun's new directory (default: outputs/DATE/TIME)")
    parser.add_argument("--data-dir", help="read the data from DIR (default: MNIST_EXP_DATA_DIR, else the cache)")
    args = parser.parse_args(argv)
    from mnist_exp.analysis import cli

    out = (args.out or default_out()).absolute()
    try:
        recorded = check_record(args.run_dir)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise ValueError(f"--out {out} already holds files: give a new directory")
        if out.resolve().is_relative_to(args.run_dir.resolve()):
            raise ValueError(f"--out {out} is inside the run it reproduces: give a directory outside {args.run_dir}")
    except OSError as e:
        return cli.fail(PROG, cli.unreadable(e))
    except (ValueError, UserError) as e:
        return cli.fail(PROG, str(e))
    for line in code_warnings(recorded, args.run_dir):
        print(f"{PROG}: warning: {line}", file=sys.stderr)
    code = rerun(args.run_dir, out, recorded, args.data_dir)
    if code not in (0, 3):  # 3: diverged, as a diverged run's rerun should
        cli.fail(PROG, f"the rerun ended with exit {code} (its line above says why): nothing compared")
        return code if code != 1 else cli.EXIT_USER_ERROR
    return compare(args.run_dir, out, recorded)


def compare(run_dir: Path, out: Path, recorded: Dict[str, Any]) -> int:
    """Print where the rerun is and the verdict; 0 if identical, 1 if not."""
    print(f"rerun of {run_dir.resolve()} in {out}")
    again = summary.load(out)
    found = record_diff.first_difference(run_dir, out, recorded, again)
    if found:
        print(f"differs: {found}{_threads_note(recorded, again)}")
        return 1
    weights = run_dir / record.WEIGHTS
    kept = f"{len(record.read_specs(weights, 'weights'))} arrays of weights.npz" if weights.exists() else "no weights"
    classes = f"{len(record_diff.read_rows(run_dir / record.CONFUSION))} classes' results" \
        if (run_dir / record.CONFUSION).exists() else "no per-class results (none recorded)"
    print(f"identical: {recorded.get('epochs_run')} epochs of metrics.csv (every column but seconds), {kept} "
          f"(bit for bit), {classes}; {recorded.get('status')}")
    return 0


def _threads_note(recorded: Dict[str, Any], again: Dict[str, Any]) -> str:
    """Other BLAS threads (this machine could not give the run's) may explain last-bit differences."""
    then, now = ((s.get("runtime") or {}).get("blas_threads") for s in (recorded, again))
    return f" (the run had {then} BLAS threads, the rerun {now})" if then != now else ""
