"""Inference backends behind one small interface. Frameworks are imported only when a backend loads."""

from __future__ import annotations

from .base import Backend, BackendBase, load_backend

__all__ = ["Backend", "BackendBase", "load_backend"]
