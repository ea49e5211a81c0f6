"""The command line: Hydra composes and checks the config, then a plain function runs it.

Errors a user can fix (bad keys or values, data problems) end the program with one line
on stderr and a non-zero exit code, never a traceback. Set HYDRA_FULL_ERROR=1 to see one.
"""

import os
import sys
from importlib.resources import files
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mnist_exp.config import Config, register
from mnist_exp.errors import ConfigError, UserError

CONF_DIR = str(files("mnist_exp.conf"))  # top-level conf/ in a checkout, packaged when installed
EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130

register()


# Jobs of this process that ended in a user-facing error, as (exit code, one-line message).
# Kept here rather than raised so Hydra neither prints its own banner nor stops a sweep.
FAILURES: List[Tuple[int, str]] = []


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def hydra_main(dcfg: DictConfig) -> Optional[float]:
    """Returns the final test accuracy: the objective a Hydra sweeper maximises."""
    from mnist_exp.experiment import run_experiment  # keeps --help and --cfg fast

    try:
        refuse_unknown_keys(dcfg, Config)
        cfg: Config = OmegaConf.to_object(dcfg)
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        result = run_experiment(cfg, run_dir)
    except UserError as e:
        FAILURES.append((EXIT_USER_ERROR, str(e)))
        return None
    if result["status"] == "diverged":
        FAILURES.append((EXIT_DIVERGED, f"run diverged: {result['reason']}; metrics up to then in {run_dir}"))
        return None
    return result["final"]["test_accuracy"]


def refuse_unknown_keys(dcfg: DictConfig, schema: type, prefix: str = "") -> None:
    """Hydra lets `+key=value` add keys the schema lacks; a typo must not pass silently."""
    known = {f.name: f.type for f in fields(schema)}
    for key in dcfg:
        if key not in known:
            raise ConfigError(f"unknown config key '{prefix}{key}' (known keys: {', '.join(prefix + k for k in known)})")
        if is_dataclass(known[key]) and isinstance(dcfg[key], DictConfig):
            refuse_unknown_keys(dcfg[key], known[key], f"{prefix}{key}.")


def one_line(error: BaseException) -> str:
    """Hydra and OmegaConf messages span lines; keep the first, with the key they name."""
    cause = error.__cause__ if isinstance(error.__cause__, OmegaConfBaseException) else error
    message = str(cause).strip().splitlines()[0] if str(cause).strip() else error.__class__.__name__
    key = getattr(cause, "full_key", None)
    if key and f"'{key}'" not in message and not message.startswith(f"{key}"):
        message = f"{key}: {message}"
    return message


def main() -> None:
    if os.environ.get("HYDRA_FULL_ERROR") == "1":  # the user asked for full tracebacks
        hydra_main()
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's printer
    try:
        hydra_main()
        if FAILURES:
            for code, message in FAILURES:
                _fail(message, code)
            sys.exit(max(code for code, _ in FAILURES))
    except UserError as e:
        sys.exit(_fail(str(e), EXIT_USER_ERROR))
    except (HydraException, OmegaConfBaseException) as e:
        sys.exit(_fail(one_line(e), EXIT_USER_ERROR))
    except KeyboardInterrupt:
        sys.exit(_fail("interrupted", EXIT_INTERRUPTED))
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)


def _fail(message: str, code: int) -> int:
    print(f"mnist_exp: error: {message}", file=sys.stderr)
    return code
