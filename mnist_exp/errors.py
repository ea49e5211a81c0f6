"""Errors a user can cause or fix; the CLI prints them as one line, without a traceback."""


class UserError(Exception):
    """Bad input, data or environment: the message says what and where."""


class ConfigError(UserError):
    """A config value out of its allowed range."""


class DataError(UserError):
    """A data file missing, corrupt or impossible to download."""


class RecordError(UserError):
    """The run record could not be written (disk full, read-only or missing directory):
    what was written before is intact. The CLI exits with its own code."""

    exit_code = 4


class NotSubmitted(UserError):
    """Jobs SLURM never received: all of them, or those from job `first` of a search's later
    batch on (the earlier ones' record stays in `sweep_dir`); `reason` is sbatch's or
    submitit's first words."""

    def __init__(self, reason: str, first: int = 0, sweep_dir=None):
        self.reason, self.first = reason, first
        super().__init__(f"jobs #{first} on were not submitted to SLURM: {reason}; the earlier jobs' record is "
                         f"in {sweep_dir}" if first else f"nothing was submitted to SLURM: {reason}")


WRITE_ERRNOS = {28, 30, 13, 122, 36, 1, 2, 20, 21}  # ENOSPC EROFS EACCES EDQUOT ENAMETOOLONG EPERM ENOENT ENOTDIR EISDIR


def record_error(error: OSError, where) -> RecordError:
    """One line for a failed write: which file, why, and that earlier files are intact."""
    name = error.filename or where
    return RecordError(f"cannot write {name}: {error.strerror or error}; what was written before it is intact")
