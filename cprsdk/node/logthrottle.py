"""Rate-limited log lines: the same message key at most once per interval, with a repeat count.

    throttle = LogThrottle(log, interval=30.0)
    throttle.log(logging.ERROR, ("start failed", "iris/v1"), "worker of %s failed to start: %s", name, exc)

The first line for a key is logged at once; lines for that key in the next ``interval`` seconds
are counted, not logged; the next one logged after that ends with "(repeated K times)".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

__all__ = ["LogThrottle"]

_MAX_KEYS = 1000  # keys idle for longer than the interval are forgotten past this many


@dataclass
class _Seen:
    last: float
    suppressed: int = 0


class LogThrottle:
    """Logs through ``logger``, each key at most once per ``interval`` seconds."""

    def __init__(self, logger: logging.Logger, *, interval: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger, self.interval, self.clock = logger, interval, clock
        self._seen: dict[Hashable, _Seen] = {}

    def log(self, level: int, key: Hashable, message: str, *args: object) -> bool:
        """Log ``message % args`` unless ``key`` was logged within the interval; True if logged."""
        repeated = self.check(key)
        if repeated is None:
            return False
        if repeated:
            message, args = message + " (repeated %d times)", (*args, repeated)
        self.logger.log(level, message, *args)
        return True

    def check(self, key: Hashable) -> int | None:
        """None if ``key`` is due to be left out now; else how many lines of it were left out since
        the last one (the caller logs it, e.g. as a field of a JSON line)."""
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen.last < self.interval:
            seen.suppressed += 1
            return None
        self._forget_idle(now)
        self._seen[key] = _Seen(last=now)
        return seen.suppressed if seen is not None else 0

    def _forget_idle(self, now: float) -> None:
        if len(self._seen) < _MAX_KEYS:
            return
        for key in [k for k, s in self._seen.items() if now - s.last >= self.interval]:
            del self._seen[key]
