"""Prometheus metrics of the node, rendered in the text exposition format."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

__all__ = ["Metrics"]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _labels(**pairs: str) -> str:
    inner = ",".join(f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                     for k, v in pairs.items())
    return "{" + inner + "}"


class Metrics:
    """Requests by route and status, a latency histogram by route, requests in flight."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.buckets: dict[str, list[int]] = defaultdict(lambda: [0] * len(_BUCKETS))
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.in_flight = 0

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests[(route, status)] += 1
        self.sums[route] += seconds
        self.counts[route] += 1
        buckets = self.buckets[route]
        for i, bound in enumerate(_BUCKETS):
            if seconds <= bound:
                buckets[i] += 1
                break

    def render(self, gauges: Callable[[], Iterable[tuple[str, str, dict[str, str], float]]]) -> bytes:
        """The exposition text; ``gauges`` yields (name, help, labels, value) for per-version state."""
        lines = ["# HELP cprsdk_requests_total Requests by route and status.",
                 "# TYPE cprsdk_requests_total counter"]
        lines += [f"cprsdk_requests_total{_labels(route=r, status=str(s))} {n}"
                  for (r, s), n in sorted(self.requests.items())]
        lines += ["# HELP cprsdk_request_seconds Request latency.", "# TYPE cprsdk_request_seconds histogram"]
        for route, buckets in sorted(self.buckets.items()):
            running = 0
            for bound, count in zip(_BUCKETS, buckets, strict=True):
                running += count
                lines.append(f"cprsdk_request_seconds_bucket{_labels(route=route, le=f'{bound:g}')} {running}")
            lines.append(f"cprsdk_request_seconds_bucket{_labels(route=route, le='+Inf')} {self.counts[route]}")
            lines.append(f"cprsdk_request_seconds_sum{_labels(route=route)} {self.sums[route]:.6f}")
            lines.append(f"cprsdk_request_seconds_count{_labels(route=route)} {self.counts[route]}")
        lines += ["# HELP cprsdk_requests_in_flight Requests being handled.", "# TYPE cprsdk_requests_in_flight gauge",
                  f"cprsdk_requests_in_flight {self.in_flight}"]
        seen: set[str] = set()
        for name, help_text, labels, value in gauges():
            if name not in seen:
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
                seen.add(name)
            lines.append(f"{name}{_labels(**labels)} {value:g}")
        return ("\n".join(lines) + "\n").encode()
