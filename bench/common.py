"""Helpers shared by the benchmark scripts: a trained copy of the sample, timed subprocesses, servers under wrk."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "zerocenterer-sklearn"
# What training writes, and what a checkout may hold from earlier runs: never copied.
_NOT_COPIED = ("dist", "build", "model", "sample.jsonl", "__pycache__", "*.egg-info", "*.pyc")


@dataclass(frozen=True)
class Run:
    wall: float
    stdout: str
    stderr: str


def cprsdk_command() -> list[str]:
    """The installed ``cprsdk`` script beside this interpreter, else ``python -m cprsdk``."""
    script = Path(sys.executable).with_name("cprsdk")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "cprsdk"]


def timed(cmd: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None) -> Run:
    """Run ``cmd`` to completion; its wall time by ``time.perf_counter``. Fails loudly on exit != 0."""
    full_env = {**os.environ, **(env or {})}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return Run(wall, proc.stdout, proc.stderr)


def trained_sample(dest: Path) -> Path:
    """Copy the sklearn sample's sources to ``dest`` and run its train.py there."""
    shutil.copytree(SAMPLE, dest, ignore=shutil.ignore_patterns(*_NOT_COPIED))
    timed([sys.executable, "train.py"], cwd=dest)
    return dest


def free_port() -> int:
    """A loopback port nothing listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def copy_tree(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist"))
    return dest


def shown(cmd: Sequence[str]) -> str:
    """A command for printing: the interpreter and scripts by their base names, no machine paths."""
    return " ".join("python" if part == sys.executable else Path(part).name if os.sep in part else part
                    for part in cmd)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{platform.system()} {platform.machine()}, {cores} cores available, Python {platform.python_version()}"


def load() -> str:
    """The 1-minute load average: other work on the machine skews every figure."""
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


# ------------------------------------------------------------------ servers under load (bench_node, bench_batching)

QUIET = 0.1  # cores of other work on the machine during a timed run, at most, for the run to count as quiet
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
LUA = """\
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "mean_us": %.1f, "errors": {"connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d}}\\n', summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write,
    e.status, e.timeout))
end
"""


def wrk_script(body: bytes) -> str:
    """A wrk Lua script that POSTs ``body`` as JSON and prints one ``RESULT {...}`` line at the end."""
    text = body.decode()
    if "'" in text or "\\" in text:
        raise ValueError("the body goes into a single-quoted Lua string: no quotes or backslashes")
    return LUA.replace("{body}", text)


def _stat(pid: int) -> tuple[int, float] | None:
    """(ppid, utime+stime seconds) of a process, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = text[text.rindex(")") + 2:].split()
    return int(rest[1]), (int(rest[11]) + int(rest[12])) / CLK_TCK


def descendants(root: int) -> list[int]:
    """``root`` and every process below it."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None:
                parents.setdefault(st[0], []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def cpu_by_pid(root: int) -> dict[int, float]:
    out = {}
    for pid in descendants(root):
        st = _stat(pid)
        if st is not None:
            out[pid] = st[1]
    return out


def machine_busy() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat: everything but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK


def mapped(pid: int, name: str) -> bool:
    """Whether a shared object whose path contains ``name`` is mapped into the process."""
    with contextlib.suppress(OSError):
        return any(name in line for line in Path(f"/proc/{pid}/maps").read_text().splitlines())
    return False


def affinity(pid: int) -> str:
    return ",".join(map(str, sorted(os.sched_getaffinity(pid))))


@dataclass(frozen=True)
class Probe:
    """What a server is asked while it starts and under load: POST ``body`` to ``path``; ``check``
    says whether a 200's parsed JSON is the right answer."""
    path: str
    body: bytes
    check: Callable[[Any], bool]


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    startup: dict[str, float] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def roles(self) -> dict[str, list[int]]:
        """The front (the process spawned) and its children (the node's workers)."""
        pids = descendants(self.pid)
        return {"front": [self.pid], "children": [p for p in pids if p != self.pid]}

    def info(self) -> dict[str, Any]:
        roles = self.roles()
        return {"pid": self.pid, "workers": len(roles["children"]),
                "affinity": {str(p): affinity(p) for p in roles["front"] + roles["children"]},
                "uvloop_loaded": mapped(self.pid, "uvloop"), "httptools_loaded": mapped(self.pid, "httptools")}

    def stop(self) -> None:
        """SIGTERM the process spawned (the node drains its workers); SIGKILL what is left after 60 s."""
        pids = descendants(self.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for pid in pids[1:]:
            with contextlib.suppress(ProcessLookupError):
                if _stat(pid) is not None:
                    os.kill(pid, signal.SIGKILL)


def post(port: int, probe: Probe, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", probe.path, body=probe.body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def spawn(name: str, cmd: Sequence[str], *, port: int, confined: bool, env: Mapping[str, str], cwd: Path,
          logs: Path, timeout: float, probe: Probe) -> Server:
    """Start a server (under ``taskset -c 0`` when confined); time spawn -> first answer -> first right answer."""
    full = (["taskset", "-c", "0"] if confined else []) + list(cmd)
    log = logs / f"{name}-{'confined' if confined else 'unconfined'}-{port}.log"
    with log.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(full, cwd=cwd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    server = Server(name, proc, port, log)
    answered = None
    while time.perf_counter() < start + timeout:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited {proc.returncode} while starting:\n{log.read_text()[-3000:]}")
        try:
            status, body = post(port, probe)
        except OSError:
            time.sleep(0.02)
            continue
        now = time.perf_counter()
        answered = answered or now
        if status == 200:
            if not probe.check(json.loads(body)):
                server.stop()
                raise SystemExit(f"{name} answered {body[:500]!r} to {probe.path}: not the expected answer")
            server.startup = {"first_answer": answered - start, "first_prediction": now - start}
            return server
        time.sleep(0.02)
    server.stop()
    raise SystemExit(f"{name} gave no successful prediction within {timeout:g} s:\n{log.read_text()[-3000:]}")


def wrk(port: int, path: str, concurrency: int, seconds: float, *, confined: bool, lua: Path) -> dict[str, Any]:
    """One ``wrk -t1 -cN --latency`` run (under ``taskset -c 1`` when confined): its RESULT line and its CPU."""
    cmd = (["taskset", "-c", "1"] if confined else []) + [
        "wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--latency", "--timeout", "5s", "-s", str(lua),
        f"http://127.0.0.1:{port}{path}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    result: dict[str, Any] = json.loads(line[len("RESULT "):])
    result["wrk_cpu_s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return result


def wait_quiet(limit: float) -> float:
    """Wait, at most ``limit`` seconds, for 2 s in which the machine used at most QUIET cores; seconds waited."""
    start = time.monotonic()
    while True:
        before = machine_busy()
        time.sleep(2.0)
        if (machine_busy() - before) / 2.0 <= QUIET or time.monotonic() - start >= limit:
            return time.monotonic() - start


def measure(server: Server, concurrency: int, *, path: str, warmup: float, duration: float, confined: bool,
            lua: Path) -> dict[str, Any]:
    """One point: an untimed warm-up, then a timed wrk run with the server tree's CPU (/proc) around it."""
    if warmup > 0:
        wrk(server.port, path, concurrency, warmup, confined=confined, lua=lua)
    roles = server.roles()
    before, busy_before = cpu_by_pid(server.pid), machine_busy()
    run = wrk(server.port, path, concurrency, duration, confined=confined, lua=lua)
    after, busy_after = cpu_by_pid(server.pid), machine_busy()
    if sum(run["errors"].values()):
        raise SystemExit(f"{server.name} at concurrency {concurrency}: {run['errors']} (expected none)\n"
                         f"{server.log.read_text()[-3000:]}")
    if server.roles()["children"] != roles["children"]:
        raise SystemExit(f"{server.name}: its worker processes changed during the run (a crash?)")
    requests = run["requests"]
    cpu = {role: sum(after.get(p, 0.0) - before.get(p, 0.0) for p in pids) for role, pids in roles.items()}
    seconds = run["duration_us"] / 1e6
    # What the rest of the machine used meanwhile (other jobs on a shared machine skew every figure).
    others = (busy_after - busy_before - cpu["front"] - cpu["children"] - run["wrk_cpu_s"]) / seconds
    return {
        "server": server.name, "concurrency": concurrency, "requests": requests, "seconds": seconds,
        "rps": requests / seconds, "p50_ms": run["p50_us"] / 1000, "p90_ms": run["p90_us"] / 1000,
        "p99_ms": run["p99_us"] / 1000, "max_ms": run["max_us"] / 1000, "mean_ms": run["mean_us"] / 1000,
        "cpu_us_per_request": 1e6 * (cpu["front"] + cpu["children"]) / requests,
        "front_cpu_us_per_request": 1e6 * cpu["front"] / requests,
        "children_cpu_us_per_request": 1e6 * cpu["children"] / requests,
        "server_cores_busy": (cpu["front"] + cpu["children"]) / seconds,
        "wrk_cpu_us_per_request": 1e6 * run["wrk_cpu_s"] / requests,
        "other_cores_busy": max(others, 0.0),
    }


def package_versions(names: Sequence[str]) -> dict[str, str]:
    """Installed versions of ``names`` (those installed) and of wrk."""
    import importlib.metadata

    versions = {}
    for name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    if shutil.which("wrk"):
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
        versions["wrk"] = out.split("[")[0].replace("wrk ", "").strip()
    return versions


def tree_state() -> dict[str, Any]:
    """The commit measured, and whether cprsdk/ had uncommitted changes (figures belong to a tree)."""
    def git(*cmd: str) -> str:
        proc = subprocess.run(["git", *cmd], cwd=REPO, capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else "n/a"
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "cprsdk_uncommitted": git("status", "--porcelain", "--", "cprsdk").splitlines()}
