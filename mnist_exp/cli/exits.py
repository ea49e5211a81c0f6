"""How the command line ends: its exit codes, and one line on stderr for whatever went wrong."""

import sys
from typing import Optional

from hydra.errors import OverrideParseException
from omegaconf.errors import OmegaConfBaseException

EXIT_USER_ERROR = 2


EXIT_DIVERGED = 3


EXIT_SWEEP_FAILED = 1


EXIT_INTERRUPTED = 130


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a tool that wrote into a closed pipe


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


def fail(message: str, code: int) -> int:
    print(f"mnist_exp: error: {message}", file=sys.stderr)
    return code
