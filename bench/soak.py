"""Fault and soak harness for the prediction node: mixed traffic while workers are killed.

A real ``cprsdk serve --registry`` on a free loopback port serves three permanent versions (two
models; ``other`` with dynamic batching on), each answering ``{"tag": VERSION, "y": 2 * x +
offset}`` per instance, so every answer can be checked. For ``--duration`` seconds,
``--concurrency`` client threads send:

- valid requests with known answers (to a named version, or to a model's default);
- every kind of bad input (bad JSON, NaN, wrong Content-Type, no instances, deep nesting, unknown
  model, names the node must refuse), each expecting a 4xx error envelope;
- oversized header blocks;

while slow clients trickle headers on raw sockets, and a fault thread, every few seconds, SIGKILLs
a random worker or sends a request that sleeps past ``--predict-timeout`` (504; the node kills that
worker), and deploys, deletes and sets default versions through the registry.

It fails (exit 1) on any wrong answer, any 5xx other than for a request in flight on a killed worker
or past its timeout, any request left unanswered, or growth past the stated bounds in the node's
file descriptors, threads, processes and RSS. It prints (and with ``--json`` writes) every count.

    .venv/bin/python bench/soak.py [--duration 600] [--concurrency 64] [--json PATH]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cprsdk_command, free_port, load, machine  # noqa: E402

PREDICTOR = '''
import os
import time


class SoakPredictor:
    def __init__(self, tag):
        self.tag = tag

    @classmethod
    def from_path(cls, model_dir):
        with open(os.path.join(model_dir, "tag.txt")) as f:
            return cls(f.read().strip())

    def predict(self, instances, offset=0, **kwargs):
        out = []
        for instance in instances:
            if isinstance(instance, dict):
                time.sleep(instance.get("sleep", 0))
                instance = instance["x"]
            out.append({"tag": self.tag, "y": 2 * instance + offset})
        return out
'''
PERMANENT = (("soak", "v1"), ("soak", "v2"), ("other", "v1"))
BOUNDS = {"fds": 200, "threads": 30, "processes": 6, "rss_mb": 200.0}  # growth over the warm-up sample
BAD = [  # (body, content type, extra path) -> a 4xx envelope
    (b"{not json", "application/json", ""),
    (b'{"instances": [NaN]}', "application/json", ""),
    (b'{"instances": [1]}', "text/plain", ""),
    (b'{"rows": [1]}', "application/json", ""),
    (b'{"instances": ' + b"[" * 200 + b"]" * 200 + b"}", "application/json", ""),
    (b'{"instances": [1]}', "application/json", "nosuchmodel"),
    (b'{"instances": [1]}', "application/json", "bad..name"),
    (b'{"instances": [1]}', "application/json", "x" * 300),
]


@dataclass
class Tally:
    """What happened, shared by the threads (under ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    kills: list[float] = field(default_factory=list)  # monotonic times of worker kills (ours and timeouts')
    violations: list[str] = field(default_factory=list)

    def count(self, key: str) -> None:
        with self.lock:
            self.counts[key] += 1

    def fault(self, key: str, when: float | None = None) -> None:
        with self.lock:
            self.faults[key] += 1
            if when is not None:
                self.kills.append(when)

    def violate(self, text: str) -> None:
        with self.lock:
            self.counts["violations"] += 1
            if len(self.violations) < 50:
                self.violations.append(text)

    def killed_during(self, start: float, end: float) -> bool:
        """Whether a worker was killed while a request was in flight. The thread that killed it may not
        have said so yet when the request's answer comes back: ask again a moment later."""
        for attempt in range(2):
            with self.lock:
                if any(start - 0.5 <= t <= end + 0.5 for t in self.kills):
                    return True
            if attempt == 0:
                time.sleep(2.0)
        return False


# ------------------------------------------------------------------ the node and its registry


def _project(root: Path, tag: str) -> Path:
    project = root / f"src-{tag}"
    (project / "model").mkdir(parents=True)
    (project / "model" / "tag.txt").write_text(tag)
    (project / "predictor.py").write_text(PREDICTOR)
    (project / "cprsdk.toml").write_text('name = "soak"\nprediction_class = "predictor.SoakPredictor"\n')
    return project


def _cli(*args: str, registry: Path) -> None:
    proc = subprocess.run([*cprsdk_command(), *args, "--registry", str(registry)], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"cprsdk {' '.join(args)} failed:\n{proc.stderr[-2000:]}")


def _deploy(root: Path, registry: Path, model: str, version: str, *, default: bool = False) -> None:
    src = _project(root, f"{model}-{version}-{time.monotonic_ns()}")
    (src / "model" / "tag.txt").write_text(version)
    batching = ["--max-batch-size", "32", "--max-batch-wait-ms", "2"] if model == "other" else []
    _cli("deploy", str(src), "--model", model, "--version", version, *(["--set-default"] if default else []),
         *batching, "--format", "json", registry=registry)


@contextmanager
def _node(root: Path, registry: Path, args: argparse.Namespace) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    log = (root / "node.log").open("wb")
    command = [*cprsdk_command(), "serve", "--registry", str(registry), "--port", str(port),
               "--workers", str(args.workers), "--predict-timeout", str(args.predict_timeout),
               "--poll-interval", "1", "--header-timeout", str(args.header_timeout)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    base = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not _all_ready(base):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the node did not become ready:\n{(root / 'node.log').read_text()[-3000:]}")
            time.sleep(0.2)
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        log.close()


def _all_ready(base: str) -> bool:
    try:
        status, body, _ = _request(base, "GET", "/readyz", None, {})
    except OSError:
        return False
    states = json.loads(body).get("versions", {})
    return all(states.get(f"{m}/{v}") == "READY" for m, v in PERMANENT)


def _request(base: str, method: str, path: str, body: bytes | None, headers: dict[str, str],
             conn: http.client.HTTPConnection | None = None, timeout: float = 60) -> tuple[int, bytes, float]:
    host, port = base.split(":")
    own = conn or http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        start = time.monotonic()
        own.request(method, path, body, headers)
        answer = own.getresponse()
        return answer.status, answer.read(), start
    finally:
        if conn is None:
            own.close()


# ------------------------------------------------------------------ traffic


def _path(model: str, version: str | None) -> str:
    where = f"/v1/projects/soak/models/{model}" + (f"/versions/{version}" if version else "")
    return f"{where}:predict"


class Client:
    """One client thread's loop: pick a kind of request, send it, judge the answer."""

    def __init__(self, base: str, tally: Tally, args: argparse.Namespace, seed: int) -> None:
        self.base, self.tally, self.args = base, tally, args
        self.rng = random.Random(seed)
        self.conn: http.client.HTTPConnection | None = None

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            roll = self.rng.random()
            kind = "valid" if roll < 0.85 else "bad" if roll < 0.96 else "header"
            try:
                getattr(self, f"_{kind}")()
            except (OSError, http.client.HTTPException) as exc:
                self._close()
                self.tally.violate(f"{kind}: no answer ({type(exc).__name__}: {exc})")

    def _send(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any, float, float]:
        if self.conn is None:
            host, port = self.base.split(":")
            self.conn = http.client.HTTPConnection(host, int(port), timeout=self.args.predict_timeout + 60)
        status, data, start = _request(self.base, "POST", path, body, headers, self.conn)
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = data
        return status, parsed, start, time.monotonic()

    def _close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _excused(self, status: int, body: Any, start: float, end: float) -> bool:
        """A 5xx the harness allows: in flight on a killed worker, or past the predict timeout."""
        message = str(body.get("error", {}).get("message", "")) if isinstance(body, dict) else ""
        lost = "exited" in message or "was stopped" in message  # the node names the worker it lost
        if status == 500 and lost and self.tally.killed_during(start, end):
            return True
        return status == 504 and end - start >= self.args.predict_timeout - 0.1

    def _judge_5xx(self, kind: str, status: int, body: Any, start: float, end: float) -> bool:
        if status < 500:
            return False
        if self._excused(status, body, start, end):
            self.tally.count(f"{kind}: excused {status}")
        else:
            self.tally.violate(f"{kind}: {status} {str(body)[:300]}")
        return True

    def _valid(self) -> None:
        model, version = self.rng.choice(PERMANENT)
        named = model != "soak" or self.rng.random() < 0.7
        xs = [self.rng.randint(-1000, 1000) for _ in range(self.rng.randint(1, 4))]
        offset = self.rng.choice([0, 1, 7])
        body = json.dumps({"instances": xs, "offset": offset}).encode()
        status, answer, start, end = self._send(_path(model, version if named else None), body,
                                                {"Content-Type": "application/json"})
        if self._judge_5xx("valid", status, answer, start, end):
            return
        tags = {version} if named else {"v1", "v2"}  # soak's default moves between v1 and v2
        got = answer.get("predictions") if isinstance(answer, dict) else None
        ok = (status == 200 and isinstance(got, list) and len(got) == len(xs)
              and all(p == {"tag": got[0]["tag"], "y": 2 * x + offset} for p, x in zip(got, xs, strict=True))
              and got[0]["tag"] in tags)
        self.tally.count("valid: right" if ok else "valid: wrong")
        if not ok:
            self.tally.violate(f"wrong answer for {model}/{version if named else 'default'}: {status} "
                               f"{str(answer)[:300]}")

    def _bad(self) -> None:
        body, content_type, model = self.rng.choice(BAD)
        status, answer, start, end = self._send(_path(model or "soak", None if model else "v1"), body,
                                                {"Content-Type": content_type})
        if self._judge_5xx("bad", status, answer, start, end):
            return
        envelope = isinstance(answer, dict) and {"code", "message", "status"} <= set(answer.get("error", {}))
        if 400 <= status < 500 and envelope:
            self.tally.count(f"bad: {status}")
        else:
            self.tally.violate(f"bad input answered {status} {str(answer)[:200]}")

    def timeout(self) -> None:
        """One request that sleeps past the predict timeout (sent by the fault thread)."""
        body = json.dumps({"instances": [{"x": 1, "sleep": self.args.predict_timeout + 1}]}).encode()
        model, version = self.rng.choice(PERMANENT)
        status, answer, start, end = self._send(_path(model, version), body, {"Content-Type": "application/json"})
        self.tally.fault("timeouts", when=end)  # the node kills that worker
        if not self._judge_5xx("timeout", status, answer, start, end):
            self.tally.violate(f"a request past the timeout answered {status}")

    def _header(self) -> None:
        self._close()  # the node may close the connection after refusing the headers
        headers = {"Content-Type": "application/json", "X-Padding": "p" * self.rng.choice([20_000, 200_000])}
        try:
            status, answer, start, end = self._send(_path("soak", "v1"), b'{"instances": [1]}', headers)
        except (OSError, http.client.HTTPException):
            self.tally.count("header: connection closed")
            self._close()
            return
        self._close()
        if not self._judge_5xx("header", status, answer, start, end):
            self.tally.count(f"header: {status}")


def _slow_client(base: str, stop: threading.Event, tally: Tally) -> None:
    """Open a connection, then trickle a header byte a second until the node closes it."""
    host, port = base.split(":")
    while not stop.is_set():
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"POST /v1/projects/soak/models/soak:predict HTTP/1.1\r\nHost: x\r\n")
            tally.fault("slow clients")
            while not stop.wait(1.0):
                try:
                    sock.sendall(b"X")
                except OSError:
                    tally.count("slow client: closed by the node")
                    break


# ------------------------------------------------------------------ faults and resources


def _workers(node: psutil.Process) -> list[psutil.Process]:
    found = []
    for child in node.children(recursive=True):
        try:
            if "cprsdk.node.worker" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def _faults(node: psutil.Process, base: str, root: Path, registry: Path, stop: threading.Event, tally: Tally,
            args: argparse.Namespace, rng: random.Random) -> None:
    """Every few seconds a worker SIGKILLed or a request past the timeout; every 8 s a registry change."""
    churn = 0
    next_change = time.monotonic() + 8
    while not stop.wait(rng.uniform(1.5, 4.0)):
        workers = _workers(node)
        if rng.random() < 0.3:
            sleeper = Client(base, tally, args, rng.randrange(2**32))  # its own connection
            threading.Thread(target=sleeper.timeout, daemon=True).start()
        elif workers:
            victim = rng.choice(workers)
            with suppress(psutil.Error):
                victim.kill()
                tally.fault("workers killed", when=time.monotonic())
        if time.monotonic() < next_change:
            continue
        churn += 1
        try:
            _change_registry(root, registry, churn, tally)
        except RuntimeError as exc:
            tally.violate(f"registry change failed: {exc}")
        next_change = time.monotonic() + 8


def _change_registry(root: Path, registry: Path, churn: int, tally: Tally) -> None:
    _cli("versions", "set-default", f"v{1 + churn % 2}", "--model", "soak", registry=registry)
    tally.fault("defaults set")
    _deploy(root, registry, "churn", f"c{churn}", default=True)  # so the one before can go
    tally.fault("deploys")
    if churn > 1:
        _cli("versions", "delete", f"c{churn - 1}", "--model", "churn", registry=registry)
        tally.fault("deletes")


def _sample(node: psutil.Process) -> dict[str, float]:
    children = node.children(recursive=True)
    return {"fds": node.num_fds(), "threads": node.num_threads(), "processes": len(children),
            "rss_mb": node.memory_info().rss / 2**20}


def _watch(node: psutil.Process, stop: threading.Event, samples: list[dict[str, float]]) -> None:
    while not stop.wait(2.0):
        with suppress(psutil.Error):
            samples.append(_sample(node))


def _growth(samples: list[dict[str, float]], tally: Tally) -> dict[str, dict[str, float]]:
    base, rest = samples[0], samples[1:] or samples
    report = {}
    for key, bound in BOUNDS.items():
        peak = max(s[key] for s in rest)
        report[key] = {"start": base[key], "peak": peak, "bound": base[key] + bound}
        if peak > base[key] + bound:
            tally.violate(f"{key} grew from {base[key]:g} to {peak:g} (bound +{bound:g})")
    return report


# ------------------------------------------------------------------ the run


def _threads(target: Callable[..., None], count: int, *args: Any) -> list[threading.Thread]:
    threads = [threading.Thread(target=target, args=args, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def soak(args: argparse.Namespace) -> dict[str, Any]:
    tally, rng = Tally(), random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="cprsdk-soak-") as tmp:
        root, registry = Path(tmp), Path(tmp, "registry")
        for model, version in PERMANENT:
            _deploy(root, registry, model, version, default=version == "v1")
        with _node(root, registry, args) as (proc, base):
            node = psutil.Process(proc.pid)
            stop, samples = threading.Event(), [_sample(node)]
            clients = [Client(base, tally, args, rng.randrange(2**32)) for _ in range(args.concurrency)]
            threads = [threading.Thread(target=c.run, args=(stop,), daemon=True) for c in clients]
            for thread in threads:
                thread.start()
            threads += _threads(_slow_client, args.slow_clients, base, stop, tally)
            threads += _threads(_watch, 1, node, stop, samples)
            threads += _threads(_faults, 1, node, base, root, registry, stop, tally, args, rng)
            stop.wait(args.duration)
            stop.set()
            for thread in threads:
                thread.join(args.predict_timeout + 90)
                if thread.is_alive():
                    tally.violate("a client thread never got its answer")
            samples.append(_sample(node))
    served = sum(v for k, v in tally.counts.items() if k != "violations")
    return {"duration_s": args.duration, "concurrency": args.concurrency, "requests": served,
            "counts": dict(sorted(tally.counts.items())), "faults": dict(sorted(tally.faults.items())),
            "resources": _growth(samples, tally), "violations": tally.violations,
            "passed": not tally.violations, "machine": machine(), "load": load()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=600, help="seconds of traffic (default: 600)")
    parser.add_argument("--concurrency", type=int, default=64, help="client threads (default: 64)")
    parser.add_argument("--slow-clients", type=int, default=8, help="trickling connections (default: 8)")
    parser.add_argument("--workers", type=int, default=2, help="workers per version (default: 2)")
    parser.add_argument("--predict-timeout", type=float, default=3.0, help="the node's (default: 3)")
    parser.add_argument("--header-timeout", type=float, default=5.0,
                        help="the node's, so slow clients are cut within the run (default: 5)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", metavar="PATH", help="also write the report here")
    args = parser.parse_args()
    report = soak(args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
