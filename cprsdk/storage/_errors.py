"""The storage layer's errors; they live in the one tree of :mod:`cprsdk.errors`."""

from __future__ import annotations

from cprsdk.errors import AlreadyExists, IntegrityError, NotFound, PreconditionFailed, StorageError

__all__ = ["AlreadyExists", "IntegrityError", "NotFound", "PreconditionFailed", "StorageError"]
