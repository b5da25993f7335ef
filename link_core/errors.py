"""Errors that mean "the user handed us something wrong".

The CLI turns every :class:`UserError` into one line ``error: <message>`` and exit code 2.
Messages say *what* is wrong and *where* (a path, a config key, a link name).
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: a path, a config value, a data set, a checkpoint."""


class ConfigError(UserError):
    """A config file or ``--set`` override is invalid (unknown key, wrong type, bad value)."""


class DataError(UserError):
    """A data set cannot be read or is inconsistent (names the offending file)."""


class CheckpointError(UserError):
    """A checkpoint or weights file is missing, unreadable or does not match the config."""


class TrainingDiverged(UserError):
    """A loss term became NaN or Inf; training stopped without writing a checkpoint."""


class OutputError(UserError):
    """An output cannot be written where asked: a path that is a file where a folder is
    needed (or the reverse), a folder that cannot be made, a full disk. Nothing already
    there was changed."""
