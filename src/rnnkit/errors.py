"""The error types rnnkit raises for things a user can fix, each with its own exit code.

The command line prints them as one line (``rnnkit: error: ...``) and exits with ``exit_code``; library
callers catch them like any exception. Programming errors (bad arguments to ``rnnkit.nn``) stay
``ValueError``.
"""

from __future__ import annotations


class RnnkitError(Exception):
    """Base class: a problem the user can fix, reported in one line."""

    exit_code = 1


class UsageError(RnnkitError):
    """A flag or argument out of range, a conflicting combination, an existing run folder."""

    exit_code = 2


class DataError(RnnkitError):
    """An input file is missing, empty, binary, not UTF-8, unparsable or too small."""

    exit_code = 3


class CheckpointError(RnnkitError):
    """A run folder or checkpoint is missing, corrupt, of another kind or another format version."""

    exit_code = 4


class TrainingError(RnnkitError):
    """Training cannot go on: the loss became NaN or infinite, or exploded."""

    exit_code = 5


__all__ = ["CheckpointError", "DataError", "RnnkitError", "TrainingError", "UsageError"]
