"""The Textual wizard: detect, choose, review, run live, explain."""

from .app import WizardApp

__all__ = ["WizardApp"]
