"""Prometheus metrics of the node, rendered in the text exposition format."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

__all__ = ["SIZE_BUCKETS", "WAIT_BUCKETS", "BatchStats", "Histogram", "Metrics", "render_batches"]

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


SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
WAIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Histogram:
    """A Prometheus histogram: counts per upper bound, their sum and count."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.sum += value
        self.count += 1
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
                break

    def lines(self, name: str, labels: dict[str, str]) -> list[str]:
        out, running = [], 0
        for bound, count in zip(self.bounds, self.counts, strict=True):
            running += count
            out.append(f"{name}_bucket{_labels(**labels, le=f'{bound:g}')} {running}")
        out.append(f"{name}_bucket{_labels(**labels, le='+Inf')} {self.count}")
        out.append(f"{name}_sum{_labels(**labels)} {self.sum:.6g}")
        out.append(f"{name}_count{_labels(**labels)} {self.count}")
        return out


class BatchStats:
    """One version's batching figures: each predict call's instances and requests, and each request's queue wait."""

    def __init__(self) -> None:
        self.instances = Histogram(SIZE_BUCKETS)
        self.requests = Histogram(SIZE_BUCKETS)
        self.wait = Histogram(WAIT_BUCKETS)

    def record_calls(self, calls: Iterable[tuple[int, int]]) -> None:
        for instances, requests in calls:
            self.instances.observe(instances)
            self.requests.observe(requests)


_BATCH_HELP = (("cprsdk_batch_instances", "instances", "Instances per predict call of a version with batching."),
               ("cprsdk_batch_requests", "requests", "Requests per predict call of a version with batching."),
               ("cprsdk_batch_queue_wait_seconds", "wait",
                "Time a request of a version with batching waited in the node's queue before it was sent to a "
                "worker."))


def render_batches(versions: Iterable[tuple[dict[str, str], BatchStats]]) -> bytes:
    """The batching histograms of every version with batching on, in the exposition format."""
    items = list(versions)
    lines: list[str] = []
    for name, attribute, help_text in _BATCH_HELP:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        for labels, stats in items:
            lines += getattr(stats, attribute).lines(name, labels)
    return ("\n".join(lines) + "\n").encode() if items else b""
