"""Errors a user can cause. Each carries what went wrong and what to do about it.

Front ends print ``str(error)`` (message, then the fix) and never a traceback.
"""

from __future__ import annotations


class WizardError(Exception):
    """Base class for every error the user can cause or fix."""

    exit_code = 2

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message}\n  Fix: {self.fix}" if self.fix else self.message


class ProfileError(WizardError):
    """A profile file or a flag holds a value that is not allowed."""


class CoverageError(WizardError):
    """The chosen combination is known broken, not implemented, or not installed here."""


class ModelError(WizardError):
    """A model file is missing, corrupt or not what the benchmark expects."""


class DatasetError(WizardError):
    """A dataset is missing, incomplete or in the wrong format."""


class ResultsError(WizardError):
    """The results directory cannot be written (permissions, disk full)."""


class RunError(WizardError):
    """A LoadGen test failed, hung or was cancelled."""

    exit_code = 1
