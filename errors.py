"""The types of bad input. Every check in the project raises one of these, and the entry points catch them by
type (training/cli.user_errors): one line, `Error: <message>`, exit status 1. Anything else is a bug and keeps
its traceback. This module imports nothing, so every floor (models/ and datamodules/ too) may raise them.

The subclasses are also ValueError / FileNotFoundError, so code and tests that catch those keep working.
"""


class UserError(Exception):
    """Bad input (a config value, a file, a checkpoint); the message names the field or file and the fix."""


class ConfigError(UserError, ValueError):
    """A config value or an argument that cannot work: `model.n_embd=100 is not divisible by model.n_head=6: ...`."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named (or the run needs) is not there."""
