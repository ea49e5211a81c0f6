"""Errors a user can cause or fix; the CLI prints them as one line, without a traceback."""


class UserError(Exception):
    """Bad input, data or environment: the message says what and where."""


class ConfigError(UserError):
    """A config value out of its allowed range."""


class DataError(UserError):
    """A data file missing, corrupt or impossible to download."""
