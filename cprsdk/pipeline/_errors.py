"""What goes wrong with one item of a pipeline: the :class:`ItemError` record.

A failure of one item is not an exception of the run: it is recorded as an :class:`ItemError` in
``pipe.errors`` under the item's key, and the other items go on. The run's own failure is
:class:`cprsdk.errors.PipelineError`, in the one tree of :mod:`cprsdk.errors`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ItemError"]


@dataclass(frozen=True)
class ItemError:
    """One input that did not reach the output: its key, the stage that failed, the error type and message."""

    key: Any
    stage: str
    type: str
    message: str

    def __str__(self) -> str:
        return f"{self.key!r}: stage {self.stage!r} raised {self.type}: {self.message}"
