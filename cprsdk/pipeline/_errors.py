"""What goes wrong in a pipeline: the run itself (:class:`PipelineError`) or one item (:class:`ItemError`).

    CprError
    └── PipelineError     a stage is misconfigured, a worker's setup failed, or reading the inputs failed

A failure of one item is not an exception of the run: it is recorded as an :class:`ItemError` in
``pipe.errors`` under the item's key, and the other items go on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cprsdk.errors import CprError

__all__ = ["ItemError", "PipelineError"]


class PipelineError(CprError):
    """The pipeline cannot run: a bad stage, a failed worker setup, or inputs that failed to read."""

    status_code = 500


@dataclass(frozen=True)
class ItemError:
    """One input that did not reach the output: its key, the stage that failed, the error type and message."""

    key: Any
    stage: str
    type: str
    message: str

    def __str__(self) -> str:
        return f"{self.key!r}: stage {self.stage!r} raised {self.type}: {self.message}"
