"""Progress of long work on stderr: a tqdm bar on a terminal, else a plain line every few seconds."""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

__all__ = ["Progress", "Steps"]


def _terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal a bar can be drawn on (one that reports a width: a pseudo-terminal
    without a window size gets plain lines)."""
    try:
        return stream.isatty() and os.get_terminal_size(stream.fileno()).columns > 0
    except (OSError, ValueError, AttributeError):
        return False


class Progress:
    """``progress(done, total)`` callbacks drawn for people; ``close()`` when the work ends."""

    def __init__(self, unit: str, *, stream: TextIO | None = None, every: float = 5.0, quiet: bool = False) -> None:
        self.unit, self.every, self.quiet = unit, every, quiet
        self.stream = stream or sys.stderr
        self._bar: Any = None
        self._start = time.monotonic()
        self._last = 0.0
        self._first: int | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        if _terminal(self.stream):
            self._draw(done, total)
        else:
            self._line(done, total)

    def _draw(self, done: int, total: int) -> None:
        if self._bar is None:
            from tqdm import tqdm  # type: ignore[import-untyped]

            self._bar = tqdm(total=total, initial=done, unit=f" {self.unit}", unit_scale=True, file=self.stream,
                             dynamic_ncols=True, smoothing=0.1)
        self._bar.update(done - self._bar.n)

    def _line(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self._first is None:
            self._first = done
        if done < total and now - self._last < self.every:
            return
        self._last = now
        rate = (done - self._first) / max(now - self._start, 1e-9)
        eta = f", about {(total - done) / rate:.0f} s left" if rate > 0 and done < total else ""
        share = f" ({done / total:.0%})" if total else ""
        print(f"{done:,} of {total:,} {self.unit}{share}, {rate:,.0f} {self.unit}/s{eta}", file=self.stream,
              flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class Steps:
    """``steps(number, total, what)`` callbacks (a build's instructions, a push's layers) drawn for people:
    a tqdm bar naming the latest step on a terminal, else one line per step."""

    def __init__(self, label: str, *, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self._bar: Any = None
        self._last: tuple[int, int] | None = None

    def __call__(self, number: int, total: int, what: str) -> None:
        if _terminal(self.stream):
            self._draw(number, total, what)
        elif (number, total) != self._last:
            print(f"{self.label} {number}/{total}: {what}", file=self.stream, flush=True)
        self._last = (number, total)

    def _draw(self, done: int, total: int, what: str) -> None:
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(total=total, unit=" steps", file=self.stream, dynamic_ncols=True, leave=True)
        self._bar.total = total
        self._bar.set_description_str(f"{self.label}: {what[:60]}", refresh=False)
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.update(self._bar.total - self._bar.n)
            self._bar.close()
