"""User-facing errors: each one prints as a single line and maps to an exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1  # a known, explained failure (bad input, refused operation)
EXIT_USAGE = 2  # bad command-line usage (typer/click's own code)
EXIT_CRASH = 3  # an unexpected exception: a bug, with a log written for the report
EXIT_LOCKED = 4  # another run holds the workspace lock
EXIT_DEPLOY_FAILED = 5  # deploy failed health checks and was rolled back
EXIT_INTERRUPTED = 130


class ChronopsError(Exception):
    """An error the user can act on. `str(err)` is the one line we print."""

    exit_code = EXIT_ERROR


class UsageError(ChronopsError):
    """Bad command-line usage found after parsing (a wrong horizon, options that exclude each other):
    exits 2 like the parser's own usage errors."""

    exit_code = EXIT_USAGE


class ConfigError(ChronopsError):
    """A horizon config file is invalid."""


class SettingsError(ChronopsError):
    """The bot settings file is invalid."""


class DataError(ChronopsError):
    """A series, history or other data file is invalid or insufficient."""


class ModelError(ChronopsError):
    """A Chronos model could not be loaded or run."""


class ForgeError(ChronopsError):
    """The forge (local git or GitHub) refused or failed an operation."""


class LockedError(ChronopsError):
    exit_code = EXIT_LOCKED


class DeployFailedError(ChronopsError):
    exit_code = EXIT_DEPLOY_FAILED
