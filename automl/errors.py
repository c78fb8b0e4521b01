"""One error hierarchy for everything a user can get wrong.

Every error is a ``ValueError`` subclass, carries a one-line message that names the key or
column, what was received and the fix, and pickles cleanly so it can cross Ray workers.
"""
from __future__ import annotations


class AutoMLError(ValueError):
    """Base class of automl's user-facing errors (printed on one line by the CLI)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __reduce__(self):  # keep picklable across Ray workers
        return (self.__class__, (self.message,))

    def __str__(self) -> str:
        return " ".join(self.message.split())


class ConfigError(AutoMLError):
    """A config key or value is unknown or invalid."""


class DataError(AutoMLError):
    """The input data cannot be read or cannot be used."""


class ArtifactError(AutoMLError):
    """A run folder is missing, incomplete or tampered with."""


class SearchError(AutoMLError):
    """The search produced no usable model."""
