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


WRITE_ERRNOS = {28, 30, 13, 122, 36, 1, 2, 20, 21}  # ENOSPC EROFS EACCES EDQUOT ENAMETOOLONG EPERM ENOENT ENOTDIR EISDIR


def record_error(error: OSError, where) -> RecordError:
    """One line for a failed write: which file, why, and that earlier files are intact."""
    name = error.filename or where
    return RecordError(f"cannot write {name}: {error.strerror or error}; what was written before it is intact")
