"""The command line as typed, checked before Hydra does anything with it: Hydra's flags that
would swap mnist_exp's config for another, modes given together, a --cfg of a config a run
would refuse, and keys the schema does not know."""

from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import List, Optional

from omegaconf import DictConfig, OmegaConf, open_dict

from mnist_exp.cli import dir_guard
from mnist_exp.config import CONF_DIR, Config, override_value, validate
from mnist_exp.errors import ConfigError
from mnist_exp.record import SUMMARY


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


def refuse_unknown_keys(dcfg: DictConfig, schema: type, prefix: str = "") -> None:
    """Hydra lets `+key=value` add keys the schema lacks; a typo must not pass silently."""
    known = {f.name: f.type for f in fields(schema)}
    for key in dcfg:
        if key not in known:
            raise ConfigError(f"unknown config key '{prefix}{key}' (known keys: {', '.join(prefix + k for k in known)})")
        if is_dataclass(known[key]) and isinstance(dcfg[key], DictConfig):
            refuse_unknown_keys(dcfg[key], known[key], f"{prefix}{key}.")
