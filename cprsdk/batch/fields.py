"""The fields of a node job's ``predictionInput``, checked one by one: a wrong one is a 400 naming it.

AI Platform's Job resource carries strings, lists and integers; an integer may arrive as a JSON
number or as a string of digits (the discovery clients send int64 fields as strings).
"""

from __future__ import annotations

from typing import Any

from cprsdk.errors import RequestError

__all__ = ["MAX_WORKER_COUNT", "integer", "number", "string", "strings"]

MAX_WORKER_COUNT = 32  # worker processes one node job may start (documented in docs/batch.md)


def _where(name: str, where: str = "") -> str:
    return f"predictionInput.{where + '.' if where else ''}{name}"


def integer(given: dict[str, Any], name: str, *, default: int, low: int, high: int | None = None) -> int:
    """``given[name]`` as an integer from ``low`` to ``high`` (a number or a string of digits)."""
    value = given.get(name, default)
    parsed: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        parsed = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        parsed = int(value)
    bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
    if parsed is None or parsed < low or (high is not None and parsed > high):
        raise RequestError(f"{_where(name)} must be an integer {bounds}, got {value!r}.",
                           hint=f"Send {name} as a whole number {bounds}, or leave it out for {default}.")
    return parsed


def number(given: dict[str, Any], name: str) -> float | None:
    """``given[name]`` as a number above 0, or None when it is absent."""
    value = given.get(name)
    if value is None:
        return None
    parsed: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        parsed = float(value)
    elif isinstance(value, str):
        try:
            parsed = float(value.strip().removesuffix("s"))  # "30" or "30s" (a protobuf Duration)
        except ValueError:
            parsed = None
    if parsed is None or not parsed > 0 or parsed == float("inf"):
        raise RequestError(f"{_where(name)} must be a number of seconds above 0, got {value!r}.",
                           hint=f"Send {name} as seconds (30 or \"30s\"), or leave it out for no limit.")
    return parsed


def string(given: dict[str, Any], name: str, *, default: str = "", where: str = "") -> str:
    value = given.get(name, default)
    if not isinstance(value, str):
        raise RequestError(f"{_where(name, where)} must be a string, got {value!r}.",
                           hint=f"Send {name} as a JSON string.")
    return value


def strings(given: dict[str, Any], name: str, *, required: bool = False, where: str = "") -> list[str]:
    """``given[name]`` as a list of non-empty strings (non-empty itself when ``required``)."""
    value = given.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value) or (required and not value):
        need = "a non-empty list" if required else "a list"
        raise RequestError(f"{_where(name, where)} must be {need} of non-empty strings, got {value!r}.",
                           hint=f"Send {name} as a JSON array of strings.")
    return list(value)
