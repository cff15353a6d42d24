"""Printing results for people (aligned tables) or programs (JSON), as ``--format`` asks."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

__all__ = ["print_records", "print_table"]


def _cell(value: Any) -> str:
    """One table cell: "-" for nothing, yes/no for booleans, lists joined by commas."""
    match value:
        case None:
            return "-"
        case bool():
            return "yes" if value else "no"
        case list() | tuple():
            return ",".join(_cell(v) for v in value) or "-"
    return str(value)


def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], *, out: TextIO | None = None) -> None:
    """Aligned columns with an upper-case header line."""
    stream = out or sys.stdout
    cells = [[h.upper() for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=stream)


def print_records(records: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]], *, fmt: str,
                  out: TextIO | None = None) -> None:
    """``fmt`` "json": the records as a JSON list; "table": the (header, key) columns."""
    if fmt == "json":
        print(json.dumps(list(records), indent=2), file=out or sys.stdout)
        return
    print_table([[r.get(key) for _, key in columns] for r in records], [h for h, _ in columns], out=out)
