"""How a version's workers are restarted: backoff, crash-loop detection and the serving state.

A ``WorkerPool`` replaces a worker that exited. What it says about itself while it does:

    SERVING     at least one worker is running
    RESTARTING  no worker is running and a replacement is starting; requests wait for it
    BACKOFF     no worker is running and a replacement failed to start; the next attempt waits
                ``backoff_initial`` s, doubling to ``backoff_max`` s; requests answer 503 + Retry-After
    CRASH_LOOP  no worker is running and workers crashed ``crash_loop_crashes`` times within
                ``crash_loop_window`` s; the next start waits as for BACKOFF

The version's AI Platform ``state`` stays READY through all of these (it is deployed and loaded
once); this serving state is the detail beside it (``servingState`` in the Version resource, the
value in ``/readyz``'s ``versions`` map when it is not SERVING).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from cprsdk.errors import ConfigError, CprError
from cprsdk.node.logthrottle import LogThrottle
from cprsdk.node.worker import public_error

__all__ = ["CrashWindow", "LifecyclePolicy", "RestartBackoff", "RestartSchedule", "ServingState"]

ServingState = Literal["SERVING", "RESTARTING", "BACKOFF", "CRASH_LOOP"]


@dataclass(frozen=True)
class LifecyclePolicy:
    """When and how often a version's workers are restarted (``cprsdk serve`` defaults)."""

    backoff_initial: float = 1.0  # seconds before the second attempt at a start that failed
    backoff_max: float = 60.0  # the cap of the doubling
    crash_loop_crashes: int = 5  # this many crashes ...
    crash_loop_window: float = 60.0  # ... within this many seconds is a crash loop
    log_interval: float = 30.0  # one log line per repeated message per this many seconds

    def __post_init__(self) -> None:
        if not 0 < self.backoff_initial <= self.backoff_max:
            raise ConfigError(f"The restart backoff_initial ({self.backoff_initial}) must be over 0 and at most "
                              f"backoff_max ({self.backoff_max}).", hint="Lower the first or raise the second.")
        if self.crash_loop_crashes < 1 or self.crash_loop_window <= 0:
            raise ConfigError(f"A crash loop of {self.crash_loop_crashes} crashes in {self.crash_loop_window} s "
                              "cannot be detected.", hint="Give at least 1 crash in a window over 0 s.")


class RestartBackoff:
    """Delays between attempts: 0 for the first, then ``initial`` doubling to ``cap``."""

    def __init__(self, *, initial: float, cap: float) -> None:
        self.initial, self.cap = initial, cap
        self.failures = 0

    def failed(self) -> float:
        """Record a failed attempt; the delay before the next one."""
        self.failures += 1
        return self.delay()

    def delay(self) -> float:
        if self.failures == 0:
            return 0.0
        return float(min(self.cap, self.initial * 2 ** (self.failures - 1)))

    def reset(self) -> None:
        self.failures = 0


class CrashWindow:
    """The crashes of the last ``window`` seconds; a loop once there are ``limit`` of them."""

    def __init__(self, *, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._times: collections.deque[float] = collections.deque()

    def record(self) -> None:
        self._times.append(self.clock())

    def count(self) -> int:
        now = self.clock()
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()
        return len(self._times)

    @property
    def looping(self) -> bool:
        return self.count() >= self.limit


class RestartSchedule:
    """When a pool may start its next worker, and why it waits: failed starts, or a crash loop.

    ``on_change`` is called whenever the pool starts or stops backing off (waiting requests
    look again); ``name`` is ``model/version`` for the log.
    """

    def __init__(self, policy: LifecyclePolicy, *, name: str, on_change: Callable[[], None],
                 throttle: LogThrottle) -> None:
        self.policy, self.name, self.on_change, self.throttle = policy, name, on_change, throttle
        self.backoff = RestartBackoff(initial=policy.backoff_initial, cap=policy.backoff_max)
        self._crash_backoff = RestartBackoff(initial=policy.backoff_initial, cap=policy.backoff_max)
        self.crashes = CrashWindow(limit=policy.crash_loop_crashes, window=policy.crash_loop_window)
        self._resumes: list[float] = []  # loop times the pauses in progress end (one per restarting worker)
        self.reason: ServingState = "BACKOFF"
        self.last_error = ""  # why the last start failed, until one succeeds

    @property
    def retry_at(self) -> float | None:
        """Loop time of the next start attempt while backing off, else None."""
        return min(self._resumes) if self._resumes else None

    def retry_in(self) -> int:
        """Whole seconds until the next start attempt (at least 1)."""
        if self.retry_at is None:
            return 1
        return max(1, math.ceil(self.retry_at - asyncio.get_running_loop().time()))

    def detail(self) -> str:
        if self.retry_at is None:
            return "a replacement worker is starting"
        if self.reason == "CRASH_LOOP":
            return (f"{self.crashes.count()} worker crashes within {self.policy.crash_loop_window:g} s; "
                    f"next start in {self.retry_in()} s")
        return (f"a replacement worker failed to start {self.backoff.failures} times ({self.last_error}); "
                f"next attempt in {self.retry_in()} s")

    def failed(self, exc: BaseException) -> None:
        delay = self.backoff.failed()
        self.last_error = public_error(exc)  # one line, paths redacted: clients see it
        text = str(exc) if isinstance(exc, CprError) else f"{type(exc).__name__}: {exc}"
        self.throttle.log(logging.ERROR, ("start failed", self.name),
                          "a replacement worker of %s failed to start (%d failures in a row): %s; next attempt "
                          "in %g s", self.name, self.backoff.failures, text, delay)

    def started(self) -> None:
        self.backoff.reset()
        self.last_error = ""

    async def pause(self) -> None:
        """Wait out the backoff of failed starts, or of a crash loop (the longer of the two)."""
        delay, reason = self.backoff.delay(), "BACKOFF"
        if self.crashes.looping:
            crash_delay = self._crash_backoff.failed()
            if crash_delay >= delay:
                delay, reason = crash_delay, "CRASH_LOOP"
            self.throttle.log(logging.ERROR, ("crash loop", self.name),
                              "version %s is crash-looping (%d worker crashes within %g s); next start in %g s",
                              self.name, self.crashes.count(), self.policy.crash_loop_window, delay)
        else:
            self._crash_backoff.reset()
        if delay <= 0:
            return
        resume = asyncio.get_running_loop().time() + delay
        self._resumes.append(resume)
        self.reason = "CRASH_LOOP" if reason == "CRASH_LOOP" else "BACKOFF"
        self.on_change()
        try:
            await asyncio.sleep(delay)
        finally:
            self._resumes.remove(resume)
            self.on_change()
