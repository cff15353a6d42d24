"""Dynamic batching inside a worker: which requests may share one ``predict`` call, and splitting the outputs.

Pure functions, no I/O, so they can be property-tested. The worker (``worker.py``) reads every
request frame waiting on its pipe, turns each mergeable one into a :class:`Pending` and calls:

- :func:`plan` to group them: only requests of the same mode (AI Platform or Vertex) whose keyword
  arguments are equal (compared as their JSON text, field order included) share a group; a group
  holds at most ``max_size`` instances; a request with more instances than that is alone, never
  split. Groups keep the arrival order of their requests.
- :func:`split` to cut the outputs of one merged call into each request's share. It returns None
  when the outputs cannot be split (not a sequence, or a length other than the total): the worker
  then runs each request of that group alone, so a faulty request gets its own error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Pending", "kwargs_key", "plan", "sliceable", "split"]


@dataclass(frozen=True)
class Pending:
    """One parsed request waiting for a ``predict`` call."""

    request_id: int
    mode: int
    instances: list[Any]
    key: str  # kwargs_key of what its predict call receives besides the instances
    body: dict[str, Any]

    @property
    def count(self) -> int:
        return len(self.instances)


def kwargs_key(kwargs: dict[str, Any]) -> str:
    """A text equal for two kwargs exactly when they would reach ``predict`` as the same values."""
    return json.dumps(kwargs, separators=(",", ":"), allow_nan=False)


def plan(requests: Sequence[Pending], *, max_size: int) -> list[list[Pending]]:
    """Groups of requests that may share one call (see the module docstring); every request in exactly one."""
    groups: list[list[Pending]] = []
    open_groups: dict[tuple[int, str], tuple[list[Pending], int]] = {}
    for request in requests:
        where = (request.mode, request.key)
        if request.count >= max_size:
            groups.append([request])
            continue
        current = open_groups.get(where)
        if current is not None and current[1] + request.count <= max_size:
            current[0].append(request)
            open_groups[where] = (current[0], current[1] + request.count)
            continue
        group = [request]
        groups.append(group)
        open_groups[where] = (group, request.count)
    return groups


def sliceable(outputs: Any) -> bool:
    """A list, a tuple or a NumPy array of at least one dimension: what :func:`split` can cut."""
    if isinstance(outputs, (list, tuple)):
        return True
    return type(outputs).__module__ == "numpy" and getattr(outputs, "ndim", 0) >= 1


def split(outputs: Any, counts: Sequence[int]) -> list[Any] | None:
    """``outputs`` cut into consecutive parts of ``counts`` items; None if it is not a sequence of their total."""
    if not sliceable(outputs) or len(outputs) != sum(counts):
        return None
    if len(counts) == 1:  # a request alone: its outputs as they are
        return [outputs]
    parts, start = [], 0
    for count in counts:
        parts.append(outputs[start:start + count])
        start += count
    return parts
