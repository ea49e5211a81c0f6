"""The command line: Hydra composes and checks the config, then a plain function runs it.

Errors a user can fix (bad keys or values, data problems) end the program with one line
on stderr and a non-zero exit code, never a traceback. Set HYDRA_FULL_ERROR=1 to see one.
"""

import gc
import logging
import os
import sys
from dataclasses import fields, is_dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple, Union

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from mnist_exp.files import ownership
from mnist_exp.runner import dir_guard, from_run, sweep, sweep_resume
from mnist_exp.runner.dir_guard import Refused
from mnist_exp.config import (DATA_LOCATION, Config, DataConfig, check_no_preset_with_resume, check_preset_arch,
                              get_key, override_value, register, register_launchers, typed_keys, unused_by,
                              validate)
from mnist_exp.errors import ConfigError, UserError, record_error
from mnist_exp.runner.interrupts import Interrupted, ignore_further
from mnist_exp.record import CHECKPOINT, METRICS, SUMMARY
from mnist_exp.record.summary import load_config

CONF_DIR = str(files("mnist_exp.conf"))  # top-level conf/ in a checkout, packaged when installed
EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3
EXIT_SWEEP_FAILED = 1
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a tool that wrote into a closed pipe
log = logging.getLogger(__name__)

register()


# Jobs of this process that ended in a user-facing error, as (exit code, one-line message).
# Kept here rather than raised so Hydra neither prints its own banner nor stops a sweep.
FAILURES: List[Tuple[int, str]] = []


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def hydra_main(dcfg: DictConfig) -> Union[Dict[str, Any], "NoValue"]:
    """Returns the metrics of the epoch the run keeps (see job_value): the Optuna sweeper
    tells Optuna its validation accuracy. A run that failed or diverged returns a `NoValue`,
    which the sweeper tells as a failed trial."""
    from mnist_exp.runner.experiment import run_experiment  # keeps --help and --cfg fast

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    job = {"num": hydra_cfg.job.num, "overrides": dir_guard.typed_overrides(hydra_cfg)} if sweeping else None
    claimed: List[Path] = []  # a single run's own directory was claimed in on_run_start (dir_guard)
    record_failure = sweeping  # a sweep keeps a refused job's record; a single run refused leaves none
    requeued = sweeping and (requeued_job(run_dir) or sweep_resume.continues(run_dir))
    try:
        if sweeping:  # Hydra wrote .hydra/ and the log into the job's dir; nothing else may be there
            claimed.append(ownership.claim(run_dir, fresh=not requeued, ignore=(
                ".hydra", f"{hydra_cfg.job.name}.log", *sweep_resume.set_aside_names(run_dir))))
        refuse_unknown_keys(dcfg, Config)
        cfg: Config = OmegaConf.to_object(dcfg)
        limit_blas_to_the_job()
        resuming = bool(cfg.resume) or requeued
        origin = {}
        if cfg.from_run is not None and not resuming:  # a new run from a recorded config, with the typed changes
            cfg, origin["from_run"] = from_run.config_from_run(cfg, dir_guard.typed_overrides(hydra_cfg))
        if sweeping and not cfg.resume:  # a single run's typed keys were checked before its directory (dir_guard)
            cfg = network_of_the_job(cfg, dir_guard.typed_overrides(hydra_cfg), hydra_cfg.runtime.choices)
        extends = None
        if resuming and not requeued:  # the run goes on in its own directory; this invocation's holds .hydra/, log
            cfg, target = resumed_config(cfg, dir_guard.typed_overrides(hydra_cfg))
            claimed.append(ownership.claim(target, fresh=False))  # nobody else writes it meanwhile
            if _status(target / SUMMARY) == "completed":  # never rewritten: its extension is a new run, here
                extends = target
            else:
                run_dir = target
        trial, on_epoch = search_trial(hydra_cfg, cfg.epochs, run_dir if requeued else None) if sweeping \
            else ({}, None)
        result = run_experiment(cfg, run_dir, {"job": job, **trial, **origin}, resume=resuming, extends=extends,
                                on_epoch=on_epoch)
    except ownership.DirectoryInUse as e:  # someone else's directory: write nothing into it
        return _failed(None, job, EXIT_USER_ERROR, str(e))
    except OmegaConfBaseException as e:  # e.g. an ${oc.env:...} that does not resolve
        return _failed(run_dir if record_failure else None, job, EXIT_USER_ERROR, one_line(e), _plain(dcfg))
    except UserError as e:
        return _failed(run_dir if record_failure else None, job, getattr(e, "exit_code", EXIT_USER_ERROR), str(e),
                       _plain(dcfg))
    except Exception as e:
        if not sweeping:
            raise  # a bug: show the traceback
        log.exception("job %s failed", job["num"])  # the traceback goes to the job's log
        return _failed(run_dir, job, EXIT_USER_ERROR, f"{e.__class__.__name__}: {e}", _plain(dcfg))
    finally:
        if sweeping:  # a worker runs several jobs: each job's claim ends with it
            for path in claimed:
                ownership.release(path)
    return job_value(result, run_dir, job)


def job_value(result: Dict[str, Any], run_dir: Path, job: Optional[dict]) -> Union[Dict[str, Any], "NoValue"]:
    """What the job hands its sweeper: the metrics of the epoch whose weights the run keeps
    (early stopping may restore an earlier one), its status (completed or pruned) and epochs
    run; a diverged run's is a NoValue."""
    if result["status"] == "diverged":
        return _failed(run_dir, job, EXIT_DIVERGED, f"run diverged: {result['reason']}; metrics up to then in {run_dir}")
    return {**(result["final"] or {}), "status": result["status"], "epochs_run": result["epochs_run"]}


def search_trial(hydra_cfg, epochs: int, resumed: Optional[Path] = None) -> Tuple[Dict[str, Any], Any]:
    """For a job of an Optuna search ({}, None otherwise): its trial, recorded in summary.json,
    and the hook that reports each epoch to the trial and says when the pruner stops it (a
    `resumed` job's recorded epochs are reported first, where the trial lacks them)."""
    from importlib.util import find_spec

    if find_spec("optuna") is None:
        return {}, None
    from hydra_plugins.mnist_exp_launchers.optuna_trial import OBJECTIVE, epoch_reporter, job_trial

    trial = job_trial()
    if trial is None:
        return {}, None
    recorded = {"trial": {"number": trial["number"], "study": trial["study"], "storage": trial["storage"],
                          "objective": f"final_{OBJECTIVE}"}}
    return recorded, epoch_reporter(trial, hydra_cfg.sweeper, epochs, resumed / METRICS if resumed else None)


def network_of_the_job(cfg: Config, overrides: List[str], choices: Dict[str, Any]) -> Config:
    """A sweep job's network, as in a sweep over arch or presets: a preset that would overrule the
    job's typed arch refuses the job, and the keys its network does not use go back to their
    defaults (a line in its log says so), so its record and the sweep's comparison show only
    what shaped it."""
    typed = typed_keys(overrides)
    check_preset_arch(cfg.arch, choices, typed)
    defaults = Config()
    for key in unused_by(cfg.arch):
        if key in typed:
            log.warning("%s=%s is not used by arch=%s: the run records its default, %s", key, getattr(cfg, key),
                        cfg.arch, getattr(defaults, key))
        setattr(cfg, key, getattr(defaults, key))
    return cfg


def requeued_job(job_dir: Path) -> bool:
    """A SLURM job requeued (preempted, or at its time limit) whose earlier run left a record
    here: it resumes that run from its checkpoint. A record with no finished epoch is set aside
    (its files end in .requeued) and the job starts afresh."""
    if int(os.environ.get("SLURM_RESTART_COUNT") or 0) < 1 or not (job_dir / SUMMARY).is_file():
        return False
    if (job_dir / CHECKPOINT).is_file():
        log.info("SLURM requeued this job (restart %s): resuming its run", os.environ["SLURM_RESTART_COUNT"])
        return True
    for name in (SUMMARY, "metrics.csv"):
        if (job_dir / name).is_file():
            (job_dir / name).rename(job_dir / f"{name}.requeued")
    return False


def limit_blas_to_the_job() -> None:
    """A SLURM job's BLAS threads match the CPUs it was given (cpus_per_task)."""
    cpus = os.environ.get("SLURM_CPUS_PER_TASK")
    if cpus and cpus.isdigit():
        from threadpoolctl import threadpool_limits

        threadpool_limits(int(cpus), user_api="blas")


class NoValue:
    """A failed job's return: no objective. Its repr is the reason, which the sweeper logs."""

    def __init__(self, reason: str):
        self.reason = reason

    def __float__(self) -> float:
        raise TypeError(self.reason)

    def __repr__(self) -> str:
        return f"no value: {self.reason}"


def _plain(dcfg: DictConfig) -> Optional[dict]:
    """The job's config as plain values, for its failure record (None if it cannot be resolved)."""
    try:
        return OmegaConf.to_container(dcfg, resolve=True)
    except OmegaConfBaseException:
        return None


def _failed(run_dir: Optional[Path], job: Optional[dict], code: int, message: str,
            config: Optional[dict] = None) -> NoValue:
    FAILURES.append((code, message))
    if run_dir is not None:  # failed before the run began: leave a record
        from mnist_exp.record import summary

        try:
            summary.record_refusal(run_dir, job, message, config)
        except OSError as e:
            log.error("could not record the failure in %s: %s", run_dir, e.strerror or e)
    return NoValue(message)


def resumed_config(cfg: Config, overrides: List[str]) -> Tuple[Config, Path]:
    """The config of the run named by `resume`, with the command line's epochs and data settings.

    Anything else typed on the command line must match the run: a resumed run is the same run.
    """
    target = Path(cfg.resume).expanduser().resolve()
    for needed in (SUMMARY, CHECKPOINT):
        if not os.path.lexists(target / needed):  # one there but not a regular file: its reader says so
            raise ConfigError(_nothing_to_resume(cfg.resume, target, needed))
    original = load_config(target)
    typed = typed_keys(overrides)
    check_no_preset_with_resume(overrides)
    experiment_keys = {f.name for f in fields(Config)} - {"resume", "epochs", "data"}
    changed = sorted(k for k in typed & experiment_keys if get_key(cfg, k) != get_key(original, k))
    if changed:
        raise ConfigError(f"resume={cfg.resume}: only epochs may change when resuming, not {', '.join(changed)}")
    if "epochs" in typed:
        original.epochs = cfg.epochs
    original.data = resumed_data(cfg.data, original.data, typed, cfg.resume)
    return original, target


def _nothing_to_resume(resume: str, target: Path, missing: str) -> str:
    if (target / sweep_resume.MULTIRUN).is_file():
        return f"resume={resume}: that is a sweep directory; finish the sweep with -m resume={resume}"
    if missing == CHECKPOINT and _status(target / SUMMARY) == "diverged":  # diverged before any finite epoch
        return f"resume={resume}: the run diverged; continuing it would repeat that: start a new run (e.g. with a lower lr)"
    return (f"resume={resume}: no {missing} there, so no run to continue (a run stopped "
            "before its first epoch ended has nothing to resume: start it again)")


def _status(summary_path: Path) -> Optional[str]:
    """A run's recorded status, or None if its summary cannot be read (read as every record is)."""
    from mnist_exp.record import summary

    try:
        return summary.load(summary_path.parent).get("status")
    except (UserError, AttributeError):
        return None


def resumed_data(now: DataConfig, then: DataConfig, typed: Set[str], resume: str) -> DataConfig:
    """The run's own data set (name, files, checksums); only where it is read from may change.

    Without data keys on the command line, `now` is the default data set: if the run used
    another one, it keeps its own settings whole. Typed location keys always apply.
    """
    if from_run.data_identity(now) == from_run.data_identity(then):
        return now
    location_keys = {f"data.{key}" for key in DATA_LOCATION}
    if any(k == "data" or k.startswith("data.") and k not in location_keys for k in typed):
        raise ConfigError(f"resume={resume}: the run trained on {then.name} with its own files and checksums; "
                          "the data cannot change when resuming, only where it is read from "
                          f"({', '.join(sorted(location_keys))})")
    for key in DATA_LOCATION:
        if f"data.{key}" in typed:
            setattr(then, key, getattr(now, key))
    return then


def refuse_unknown_keys(dcfg: DictConfig, schema: type, prefix: str = "") -> None:
    """Hydra lets `+key=value` add keys the schema lacks; a typo must not pass silently."""
    known = {f.name: f.type for f in fields(schema)}
    for key in dcfg:
        if key not in known:
            raise ConfigError(f"unknown config key '{prefix}{key}' (known keys: {', '.join(prefix + k for k in known)})")
        if is_dataclass(known[key]) and isinstance(dcfg[key], DictConfig):
            refuse_unknown_keys(dcfg[key], known[key], f"{prefix}{key}.")


EXTRAS = {  # optional integration -> (the word its errors mention, the modules it needs)
    "optuna": ("optuna", ("optuna",)),
    "slurm": ("submitit", ("submitit", "hydra_plugins.hydra_submitit_launcher")),
}


def missing_extra(message: str) -> Optional[str]:
    """One line naming the extra to install, when `message` is about an integration whose
    packages are not installed (pip install -e . installs the core only)."""
    from importlib.util import find_spec

    for extra, (word, modules) in EXTRAS.items():
        if word not in message.lower():
            continue
        try:
            present = all(find_spec(m) is not None for m in modules)
        except ImportError:
            present = False
        if not present:
            return (f"this needs the '{extra}' extra, which is not installed: pip install -e '.[{extra}]' "
                    f"in a checkout, or pip install 'mnist_exp[{extra}]'")
    return None


def one_line(error: BaseException) -> str:
    """Hydra and OmegaConf messages span lines; keep the first, with the key they name.
    An override Hydra's grammar cannot read is named, with what usually causes it."""
    if isinstance(error, OverrideParseException):
        return (f"cannot read the override {error.override!r}: only ASCII letters and digits make keys and "
                "numbers, and a value with brackets, ':', '=', spaces or quotes must be quoted, "
                "e.g. 'data.mirrors=[\"http://[::1]:8000/\"]'")
    cause = error.__cause__ if isinstance(error.__cause__, OmegaConfBaseException) else error
    message = str(cause).strip().splitlines()[0] if str(cause).strip() else error.__class__.__name__
    key = getattr(cause, "full_key", None)
    if key and f"'{key}'" not in message and not message.startswith(f"{key}"):
        message = f"{key}: {message}"
    return message


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
        if sweep.LAUNCHED is not None:
            sys.exit(0 if sweep.DETACHED else report_sweep(sweep.LAUNCHED))  # detached: the launcher said where
        if FAILURES:
            dir_guard.discard_unused()  # a run refused before it started leaves nothing behind
            for code, message in FAILURES:
                _fail(message, code)
            sys.exit(max(code for code, _ in FAILURES))
    except (UserError, Refused) as e:
        dir_guard.discard_unused()
        sys.exit(_fail(str(e), getattr(e, "exit_code", EXIT_USER_ERROR)))
    except (HydraException, OmegaConfBaseException, ImportError) as e:  # before OSError: a missing config is both
        dir_guard.discard_unused()
        sys.exit(_fail(missing_extra(str(e)) or one_line(e), EXIT_USER_ERROR))
    except BrokenPipeError:  # --help or --cfg piped into head: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit must not fail
        sys.exit(EXIT_BROKEN_PIPE)
    except OSError as e:  # Hydra's own writes (.hydra/, the log) into a full or read-only place
        error = record_error(e, "the run directory")
        sys.exit(_fail(str(error), error.exit_code))
    except ValueError as e:
        if "integer string conversion" in str(e):  # Python's guard, met while Hydra parses an override
            sys.exit(_fail("an override holds an integer of over 4300 digits; no key takes such a number",
                           EXIT_USER_ERROR))
        raise
    except KeyboardInterrupt as e:
        ignore_further()
        if sweep.LAUNCHED is not None:
            report_sweep(sweep.LAUNCHED, stopped=True)
        how = f" by {e}" if isinstance(e, Interrupted) else ""
        where = getattr(e, "run_dir", None)
        if sweep.LAUNCHED is not None:  # its other jobs too: the sweep goes on where it stopped
            advice = f"; continue the sweep with python -m mnist_exp -m resume={sweep.LAUNCHED}"
        elif getattr(e, "ended", False):
            advice = f" after the run ended; its record in {where} is complete"
        elif where:
            advice = f"; finished epochs are kept, continue with resume={where}"
        else:
            advice = "; no epoch had finished, so there is nothing to resume"
        sys.exit(_fail(f"interrupted{how}{advice}", getattr(e, "exit_code", EXIT_INTERRUPTED)))
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)


def _resumed_sweep() -> None:
    """-m resume=SWEEP_DIR: the command line becomes the sweep's own (runner/sweep_resume.py)."""
    rebuilt = sweep_resume.command_line(sys.argv[1:])
    if rebuilt is not None:
        sys.argv = [sys.argv[0], *rebuilt]


OTHER_CONFIG = {"config_path": "--config-path", "config_name": "--config-name",
                "experimental_rerun": "--experimental-rerun"}  # Hydra's flags to run another config


def check_command_line(argv: List[str]) -> List[str]:
    """Refuse, before Hydra does anything, what would fail or mislead later: Hydra's flags that
    swap mnist_exp's config for another (a run's .hydra/config.yaml lacks the schema and the
    callbacks: a traceback and a stray folder), and a --cfg of a config a run would refuse.
    Returns the command line to run: `--config-path RUN/.hydra [--config-name config]`, a run's
    own record, becomes `from_run=RUN` (the same config, the schema's checks and callbacks)."""
    parser = _hydra_parser()
    try:
        args = parser.parse_args(argv)
    except _HydraUsage:
        return argv  # Hydra prints its usage line
    rerun = recorded_run_flags(argv, args)
    if rerun is not None:
        return check_command_line(rerun)
    typed = [flag for attr, flag in OTHER_CONFIG.items() if getattr(args, attr) is not None]
    if typed:
        raise ConfigError(f"{typed[0]} is not taken: mnist_exp runs its own config, and reruns a run's record only "
                          "as --config-path RUN_DIR/.hydra --config-name config (or from_run=RUN_DIR, with changes "
                          "after it); continue a run with resume=RUN_DIR, or repeat one by typing again the "
                          "overrides in RUN_DIR/.hydra/overrides.yaml (the same seed gives the same numbers)")
    modes = [flag for flag, on in (("--run", args.run), ("--multirun", args.multirun), ("--cfg", args.cfg),
                                   ("--info", args.info), ("--shell-completion", args.shell_completion)) if on]
    if len(modes) > 1:  # Hydra's own refusal is a ValueError traceback
        raise ConfigError(f"{' and '.join(modes)} cannot be given together: choose one")
    if args.cfg and not (args.help or args.hydra_help):
        if any(o.lstrip("+~").startswith("from_run=") for o in args.overrides):
            raise ConfigError("--cfg with from_run= would print mnist_exp's own defaults, not the run's config: "
                              "read it in RUN_DIR/summary.json (or RUN_DIR/.hydra/config.yaml)")
        check_printed_config(args.overrides, args.config_dir)
    return argv


def _hydra_parser():
    """Hydra's own parser (every spelling it accepts: -cp, --config-path=X, --config-p), whose
    usage errors are left to Hydra to print."""
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()

    def leave_it_to_hydra(message: str):
        raise _HydraUsage(message)

    parser.error = leave_it_to_hydra
    return parser


def recorded_run_flags(argv: List[str], args) -> Optional[List[str]]:
    """`argv` with --config-path RUN/.hydra (and --config-name config) as from_run=RUN, when
    RUN/.hydra/config.yaml and RUN/summary.json make it a run's record; else None."""
    if args.config_path is None or args.experimental_rerun is not None:
        return None
    if args.config_name not in (None, "config", "config.yaml"):
        return None
    path = args.config_path[len("file://"):] if args.config_path.startswith("file://") else args.config_path
    hydra_dir = Path(path).expanduser()
    run = hydra_dir.parent
    if hydra_dir.name != ".hydra" or not (hydra_dir / "config.yaml").is_file() or not (run / SUMMARY).is_file():
        return None
    if any(o.lstrip("+~").startswith("from_run=") for o in args.overrides):
        return None  # two runs to start from
    rest, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        flag = item.split("=", 1)[0]
        if flag in ("-cp", "-cn") or len(flag) >= len("--config-p") and (
                "--config-path".startswith(flag) or "--config-name".startswith(flag)):
            skip = "=" not in item  # its value is the next item
            continue
        rest.append(item)
    again = _hydra_parser().parse_args(rest)  # whatever spelling was missed stays, and is refused
    if again.config_path is not None or again.config_name is not None:
        return None
    return [*rest, f"from_run={override_value(str(run))}"]


class _HydraUsage(Exception):
    """The command line does not parse: Hydra says so, as usual."""


def check_printed_config(overrides: List[str], config_dir: Optional[str] = None) -> None:
    """--cfg prints the config a run would use: one a run would refuse is refused the same way.
    A --config-dir (the user's own presets) is searched as Hydra searches it."""
    from hydra import compose, initialize_config_dir

    from mnist_exp.runner import memory

    if config_dir and not any(o.lstrip("+").startswith("hydra.searchpath=") for o in overrides):
        overrides = [*overrides, f"hydra.searchpath=[file://{Path(config_dir).absolute()}]"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        dcfg = compose("config", overrides=overrides, return_hydra_config=True)
    dir_guard.check_typed(dcfg, single_run=True)
    with open_dict(dcfg):
        del dcfg["hydra"]
    refuse_unknown_keys(dcfg, Config)
    cfg = validate(OmegaConf.to_object(dcfg))
    if not cfg.resume:  # a resumed run keeps its own settings, checked when it runs
        memory.check(cfg)


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
        _fail(f"job {row['job']} {row['status']}: {row['reason']}", EXIT_SWEEP_FAILED)
    for num, overrides in never:
        _fail(f"job {num} never started" + (f" ({overrides})" if overrides else ""), EXIT_SWEEP_FAILED)
    return EXIT_SWEEP_FAILED if len(bad) or never else 0


def _fail(message: str, code: int) -> int:
    print(f"mnist_exp: error: {message}", file=sys.stderr)
    return code
