"""The prediction node (`cprsdk serve`, one worker) against the in-process ceiling, under load.

Target (issue tracker): the sklearn sample, one instance per request, the node with one worker
against a minimal raw ASGI app on uvicorn calling the same predictor in-process (`ceiling_app.py`,
the practical ceiling of a Python server), at concurrency 1, 8 and 64, requests/s and p50/p99,
with the server confined to one core and unconfined. Confined to one core: at least 0.7x the
ceiling's requests/s at concurrency 64; unconfined: at least 1.0x (two processes use two cores);
p99 at concurrency 1 within 0.5 ms of the ceiling's. Also: seconds from `cprsdk serve` start to
the first successful prediction of a deployed version, and server CPU microseconds per request.

What it does: trains a copy of samples/zerocenterer-sklearn in a temporary folder, `cprsdk deploy`s
it to a registry folder there (model `iris`, version `v1`, the default), then for each mode:

- confined: both servers start under `taskset -c 0` (the node's worker processes inherit the
  affinity) and wrk runs under `taskset -c 1`;
- unconfined: neither the servers nor wrk are pinned;

starts `cprsdk serve --registry REG --port P --workers 1` and the ceiling (`uvicorn ceiling_app:app`
with the settings `cprsdk serve` gives uvicorn: the same loop and HTTP implementations, log level,
no access log, lifespan on) as subprocesses, timing each from spawn to its first successful
prediction (the node's first start has an empty install cache: it fetches and installs the
version), and then, for each concurrency and round, alternating which server goes first: a
`--warmup` of wrk, then `--duration` seconds of `wrk -t1 -cN --latency` POSTing
{"instances": [[5.1, 3.5, 1.4, 0.2]]} to the AI Platform route
/v1/projects/bench/models/iris:predict (the ceiling answers any path). Server CPU per request is
utime+stime of the server process and all its children (/proc/PID/stat) across the timed run,
over the requests wrk completed. Every run must answer only 2xx; both servers must give the same
body. At the end, `--startups` more starts of the node (warm install cache, unpinned).

On a shared machine: each timed run also records the CPU the rest of the machine used meanwhile
(/proc/stat busy time minus the server tree and wrk). Before each run the script waits up to
`--quiet-wait` seconds for the machine to be quiet; a run during which other work used more than
0.1 core is measured again (`--retries`), and the summary takes the median of the quiet rounds only
(of all rounds, flagged DISTURBED, when none was quiet).

    .venv/bin/python bench/bench_node.py --duration 10 --rounds 3 --json node.json
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.metadata
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import REPO, cprsdk_command, free_port, load, machine, median, shown, timed, trained_sample

MODEL, VERSION = "iris", "v1"
PATH = f"/v1/projects/bench/models/{MODEL}:predict"
BODY = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode()
EXPECTED = {"predictions": ["setosa"]}
TARGET_CONFINED, TARGET_UNCONFINED, TARGET_P99_MS = 0.7, 1.0, 0.5
TARGET_CONCURRENCY = 64
QUIET = 0.1  # cores of other work on the machine during a timed run, at most, for the run to count as quiet
CLK_TCK = os.sysconf("SC_CLK_TCK")
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
""".replace("{body}", BODY.decode())


# ------------------------------------------------------------------ processes


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
    cpus = sorted(os.sched_getaffinity(pid))
    return ",".join(map(str, cpus))


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


def post(port: int, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", PATH, body=BODY, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def spawn(name: str, cmd: Sequence[str], *, port: int, confined: bool, env: dict[str, str], cwd: Path,
          logs: Path, timeout: float) -> Server:
    """Start a server; time spawn -> first answer of any kind -> first successful prediction."""
    full = (["taskset", "-c", "0"] if confined else []) + list(cmd)
    log = logs / f"{name}-{'confined' if confined else 'unconfined'}-{port}.log"
    with log.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(full, cwd=cwd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    server = Server(name, proc, port, log)
    answered = None
    deadline = start + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited {proc.returncode} while starting:\n{log.read_text()[-3000:]}")
        try:
            status, body = post(port)
        except OSError:
            time.sleep(0.02)
            continue
        now = time.perf_counter()
        answered = answered or now
        if status == 200:
            if json.loads(body) != EXPECTED:
                server.stop()
                raise SystemExit(f"{name} answered {body!r}, expected {EXPECTED}")
            server.startup = {"first_answer": answered - start, "first_prediction": now - start}
            return server
        time.sleep(0.02)
    server.stop()
    raise SystemExit(f"{name} gave no successful prediction within {timeout:g} s:\n{log.read_text()[-3000:]}")


# ------------------------------------------------------------------ load


def wrk(port: int, concurrency: int, seconds: int, *, confined: bool, lua: Path) -> dict[str, Any]:
    cmd = (["taskset", "-c", "1"] if confined else []) + [
        "wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--latency", "--timeout", "5s", "-s", str(lua),
        f"http://127.0.0.1:{port}{PATH}"]
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


def measure(server: Server, concurrency: int, args: argparse.Namespace, *, confined: bool,
            lua: Path) -> dict[str, Any]:
    """One point: an untimed warm-up, then a timed wrk run with the server tree's CPU around it."""
    if args.warmup > 0:
        wrk(server.port, concurrency, args.warmup, confined=confined, lua=lua)
    roles = server.roles()
    before, busy_before = cpu_by_pid(server.pid), machine_busy()
    run = wrk(server.port, concurrency, args.duration, confined=confined, lua=lua)
    after, busy_after = cpu_by_pid(server.pid), machine_busy()
    errors = sum(run["errors"].values())
    if errors:
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


# ------------------------------------------------------------------ the run


def node_cmd(registry: Path, port: int) -> list[str]:
    return cprsdk_command() + ["serve", "--registry", str(registry), "--port", str(port), "--workers", "1"]


def ceiling_cmd(port: int, loop: str) -> list[str]:
    uvicorn = Path(sys.executable).with_name("uvicorn")
    head = [str(uvicorn)] if uvicorn.is_file() else [sys.executable, "-m", "uvicorn"]
    # The settings `cprsdk serve` gives uvicorn (cprsdk/node/server.py): warning log level, no access
    # log, lifespan on; it calls asyncio.run(server.serve()), so the stdlib asyncio loop (uvicorn's
    # loop factory never runs) and http "auto" (httptools when installed). The ceiling matches.
    return head + ["ceiling_app:app", "--app-dir", str(REPO / "bench"), "--host", "127.0.0.1", "--port", str(port),
                   "--loop", loop, "--http", "httptools", "--lifespan", "on", "--log-level", "warning",
                   "--no-access-log", "--timeout-graceful-shutdown", "60"]


@contextlib.contextmanager
def servers(work: Path, registry: Path, cache: Path, *, confined: bool, loop: str,
            timeout: float) -> Iterator[tuple[Server, Server]]:
    started: list[Server] = []
    try:
        port = free_port()
        node = spawn("node", node_cmd(registry, port), port=port, confined=confined, timeout=timeout,
                     env={"CPRSDK_CACHE_DIR": str(cache)}, cwd=work, logs=work)
        started.append(node)
        port = free_port()
        ceiling = spawn("ceiling", ceiling_cmd(port, loop), port=port, confined=confined, timeout=timeout,
                        env={"CEILING_SAMPLE": str(work / "sample")}, cwd=work, logs=work)
        started.append(ceiling)
        yield node, ceiling
    finally:
        for server in reversed(started):
            server.stop()


def run_mode(work: Path, registry: Path, cache: Path, args: argparse.Namespace, *, confined: bool,
             lua: Path) -> dict[str, Any]:
    mode = "confined" if confined else "unconfined"
    with servers(work, registry, cache, confined=confined, loop=args.ceiling_loop, timeout=args.start_timeout) \
            as (node, ceiling):
        info = {"node": node.info(), "ceiling": ceiling.info()}
        startups = {"node": node.startup, "ceiling": ceiling.startup}
        print(f"[{mode}] node up in {node.startup['first_prediction']:.2f} s, ceiling in "
              f"{ceiling.startup['first_prediction']:.2f} s; affinity node {info['node']['affinity']}, "
              f"ceiling {info['ceiling']['affinity']}", flush=True)
        points = []
        for concurrency in args.concurrency:
            for index in range(args.rounds):
                pair = (ceiling, node) if (index + len(points)) % 2 == 0 else (node, ceiling)
                for server in pair:
                    for attempt in range(args.retries + 1):
                        waited = wait_quiet(args.quiet_wait) if args.quiet_wait > 0 else 0.0
                        point = measure(server, concurrency, args, confined=confined, lua=lua)
                        if point["other_cores_busy"] <= QUIET or attempt == args.retries:
                            break
                        print(f"[{mode}] c={concurrency:<3} round {index + 1} {server.name:<7} disturbed "
                              f"({point['other_cores_busy']:.2f} cores of other work): measuring again", flush=True)
                    point.update(mode=mode, round=index + 1, first=pair[0].name, attempts=attempt + 1,
                                 waited_for_quiet_s=waited)
                    points.append(point)
                    print(f"[{mode}] c={concurrency:<3} round {index + 1} {server.name:<7} "
                          f"{point['rps']:>7.0f} req/s  p50 {point['p50_ms']:.3f} ms  p99 {point['p99_ms']:.3f} ms"
                          f"  cpu {point['cpu_us_per_request']:.0f} us/req"
                          f"  others {point['other_cores_busy']:.2f} cores", flush=True)
    return {"mode": mode, "servers": info, "startups": startups, "points": points}


def startup_runs(work: Path, registry: Path, cache: Path, count: int, timeout: float) -> list[dict[str, float]]:
    runs = []
    for _ in range(count):
        port = free_port()
        server = spawn("node", node_cmd(registry, port), port=port, confined=False, timeout=timeout,
                       env={"CPRSDK_CACHE_DIR": str(cache)}, cwd=work, logs=work)
        server.stop()
        runs.append(server.startup)
    return runs


# ------------------------------------------------------------------ the report


def summarise(modes: list[dict[str, Any]], extra_startups: list[dict[str, float]]) -> dict[str, Any]:
    table: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    keys = ("rps", "p50_ms", "p99_ms", "cpu_us_per_request", "front_cpu_us_per_request",
            "children_cpu_us_per_request", "server_cores_busy", "wrk_cpu_us_per_request", "other_cores_busy")
    for mode in modes:
        by_conc: dict[str, dict[str, dict[str, float]]] = {}
        for point in mode["points"]:
            by_conc.setdefault(str(point["concurrency"]), {}).setdefault(point["server"], {})
        for conc, servers_ in by_conc.items():
            for name in servers_:
                runs = [p for p in mode["points"] if str(p["concurrency"]) == conc and p["server"] == name]
                clean = [p for p in runs if p["other_cores_busy"] <= QUIET]
                chosen = clean or runs
                servers_[name] = {k: median([p[k] for p in chosen]) for k in keys}
                servers_[name].update(rounds=len(chosen), disturbed=not clean)
            node, ceiling = servers_["node"], servers_["ceiling"]
            servers_["ratio"] = {"rps": node["rps"] / ceiling["rps"],
                                 "cpu": ceiling["cpu_us_per_request"] / node["cpu_us_per_request"],
                                 "p50_ms_delta": node["p50_ms"] - ceiling["p50_ms"],
                                 "p99_ms_delta": node["p99_ms"] - ceiling["p99_ms"],
                                 "cpu_us_delta": node["cpu_us_per_request"] - ceiling["cpu_us_per_request"]}
        table[mode["mode"]] = by_conc
    verdicts: dict[str, Any] = {}
    high = str(TARGET_CONCURRENCY)  # the requests/s targets are set at concurrency 64
    if "confined" in table and high in table["confined"]:
        r = table["confined"][high]["ratio"]["rps"]
        verdicts["confined_rps"] = {"concurrency": int(high), "ratio": r, "target": TARGET_CONFINED,
                                    "met": r >= TARGET_CONFINED,
                                    "cpu_ratio": table["confined"][high]["ratio"]["cpu"]}
    if "unconfined" in table and high in table["unconfined"]:
        r = table["unconfined"][high]["ratio"]["rps"]
        verdicts["unconfined_rps"] = {"concurrency": int(high), "ratio": r, "target": TARGET_UNCONFINED,
                                      "met": r >= TARGET_UNCONFINED}
    for mode, by_conc in table.items():
        if "1" in by_conc:
            d = by_conc["1"]["ratio"]["p99_ms_delta"]
            verdicts[f"{mode}_p99_c1"] = {"delta_ms": d, "target_ms": TARGET_P99_MS, "met": d <= TARGET_P99_MS}
    starts = [m["startups"]["node"] for m in modes]
    return {
        "table": table, "verdicts": verdicts,
        "other_cores_busy_max": max((p["other_cores_busy"] for m in modes for p in m["points"]), default=0.0),
        "node_startup_cold": starts[0] if starts else None,
        "node_startup_all": starts + extra_startups,
        "node_startup_warm_median": median([s["first_prediction"] for s in starts[1:] + extra_startups]),
        "ceiling_startup_median": median([m["startups"]["ceiling"]["first_prediction"] for m in modes]),
    }


def print_report(result: dict[str, Any], args: argparse.Namespace, versions: dict[str, str]) -> None:
    print(f"\nmachine: {machine()}; load average at the end: {load()}")
    print("packages: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"node:    {shown(node_cmd(Path('REG'), 0))[:-len(' --port 0 --workers 1')]} --port P --workers 1")
    print(f"ceiling: {shown(ceiling_cmd(0, args.ceiling_loop))}".replace(str(REPO / 'bench'), "bench")
          .replace(" --port 0", " --port P"))
    print(f"load:    wrk -t1 -cN -d{args.duration:g}s --latency, POST {PATH} {BODY.decode()}; "
          f"{args.rounds} round(s) per point, medians; warm-up {args.warmup:g} s")
    for mode, info in ((m["mode"], m["servers"]) for m in result["modes"]):
        for name in ("node", "ceiling"):
            i = info[name]
            print(f"[{mode}] {name}: cpus {sorted(set(i['affinity'].values()))}, {i['workers']} child process(es), "
                  f"uvloop loaded: {i['uvloop_loaded']}, httptools loaded: {i['httptools_loaded']}")
    head = (f"\n{'mode':<10} {'c':>3} | {'ceiling req/s':>13} {'p50 ms':>7} {'p99 ms':>7} {'cpu us/req':>10} |"
            f" {'node req/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'cpu us/req':>10} {'front+worker':>13} |"
            f" {'ratio':>5} {'dp50 ms':>7} {'dp99 ms':>7} {'dcpu us':>7} | rounds counted")
    print(head)
    for mode, by_conc in result["table"].items():
        for conc, s in sorted(by_conc.items(), key=lambda kv: int(kv[0])):
            c, n, r = s["ceiling"], s["node"], s["ratio"]
            split = f"{n['front_cpu_us_per_request']:.0f}+{n['children_cpu_us_per_request']:.0f}"
            flag = "".join(f" {name} {s[name]['rounds']} clean" if not s[name]["disturbed"] else f" {name} DISTURBED"
                           for name in ("ceiling", "node"))
            print(f"{mode:<10} {conc:>3} | {c['rps']:>13.0f} {c['p50_ms']:>7.3f} {c['p99_ms']:>7.3f}"
                  f" {c['cpu_us_per_request']:>10.0f} | {n['rps']:>10.0f} {n['p50_ms']:>7.3f} {n['p99_ms']:>7.3f}"
                  f" {n['cpu_us_per_request']:>10.0f} {split:>13} | {r['rps']:>5.2f} {r['p50_ms_delta']:>7.3f}"
                  f" {r['p99_ms_delta']:>7.3f} {r['cpu_us_delta']:>7.0f} |{flag}")
    print("\nverdicts:")
    for key, v in result["verdicts"].items():
        if "ratio" in v:
            print(f"  {key}: node/ceiling req/s at c={v['concurrency']} = {v['ratio']:.2f}, target >= "
                  f"{v['target']}: {'MET' if v['met'] else 'MISSED'}")
            if "cpu_ratio" in v:
                print(f"    (on one core req/s ~ 1 / CPU per request: ceiling/node CPU us per request = "
                      f"{v['cpu_ratio']:.2f}, the steadier estimate of the same ratio)")
        else:
            print(f"  {key}: node p99 - ceiling p99 at c=1 = {v['delta_ms']:+.3f} ms, target <= "
                  f"{v['target_ms']} ms: {'MET' if v['met'] else 'MISSED'}")
    print(f"\nother work on the machine during the timed runs: up to {result['other_cores_busy_max']:.2f} cores "
          f"(CPU busy in /proc/stat minus the server tree and wrk). Each figure is the median of the rounds with at "
          f"most {QUIET} core of other work (\"N clean\"), else of all rounds (\"DISTURBED\").")
    cold = result["node_startup_cold"]
    if cold:
        warm = len(result["node_startup_all"]) - 1
        print(f"\nnode start-up, spawn -> first successful prediction: cold (empty install cache) "
              f"{cold['first_prediction']:.2f} s (first HTTP answer {cold['first_answer']:.2f} s)"
              + (f"; warm cache median {result['node_startup_warm_median']:.2f} s over {warm} start(s)" if warm else "")
              + f"; the ceiling (imports and loads in-process): {result['ceiling_startup_median']:.2f} s")


def tree_state() -> dict[str, Any]:
    """The commit measured, and whether cprsdk/ had uncommitted changes (figures belong to a tree)."""
    def git(*cmd: str) -> str:
        proc = subprocess.run(["git", *cmd], cwd=REPO, capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else "n/a"
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "cprsdk_uncommitted": git("status", "--porcelain", "--", "cprsdk").splitlines()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per point (default: 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed seconds of load before each (default: 2)")
    parser.add_argument("--rounds", type=int, default=1, help="timed runs per point and server (default: 1)")
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 64],
                        help="comma-separated connection counts (default: 1,8,64)")
    parser.add_argument("--modes", default="confined,unconfined", help="confined, unconfined or both (default)")
    parser.add_argument("--quiet-wait", type=float, default=60.0, metavar="S",
                        help=f"before each timed run, wait up to S seconds for the machine to use <= {QUIET} core "
                        "(a shared machine; 0: do not wait; default: 60)")
    parser.add_argument("--retries", type=int, default=2,
                        help=f"measure a run again when other work used > {QUIET} core meanwhile (default: 2)")
    parser.add_argument("--startups", type=int, default=3, help="extra node starts, warm cache (default: 3)")
    parser.add_argument("--start-timeout", type=float, default=180.0, help="seconds a server may take to start")
    parser.add_argument("--ceiling-loop", choices=("asyncio", "uvloop"), default="asyncio",
                        help="the ceiling's event loop (default: asyncio, what `cprsdk serve` runs on)")
    parser.add_argument("--json", metavar="PATH", help="also write the raw figures to PATH")
    args = parser.parse_args()
    # SIGTERM (timeout, a CI stop) unwinds like Ctrl-C, so every server started here is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    modes = [m for m in args.modes.split(",") if m]
    if any(m not in ("confined", "unconfined") for m in modes):
        parser.error("--modes takes confined and/or unconfined")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install -y wrk)")
    if "confined" in modes and (shutil.which("taskset") is None or not {0, 1} <= os.sched_getaffinity(0)):
        raise SystemExit("confined mode needs taskset and cores 0 and 1")
    versions = {}
    for name in ("uvicorn", "httptools", "uvloop", "scikit-learn", "numpy"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    versions["wrk"] = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("[")[0] \
        .replace("wrk ", "").strip()
    tree = tree_state()
    with tempfile.TemporaryDirectory(prefix="cprsdk-bench-node-") as tmp:
        work = Path(tmp)
        sample = trained_sample(work / "sample")
        registry = work / "registry"
        timed(cprsdk_command() + ["deploy", str(sample), "--model", MODEL, "--version", VERSION, "--set-default",
                                  "--registry", str(registry)],
              cwd=work, env={"CPRSDK_CACHE_DIR": str(work / "deploy-cache")})
        cache = work / "serve-cache"  # empty: the node's first start fetches and installs the version
        lua = work / "post.lua"
        lua.write_text(LUA)
        results = [run_mode(work, registry, cache, args, confined=(m == "confined"), lua=lua) for m in modes]
        extra = startup_runs(work, registry, cache, args.startups, args.start_timeout)
        for run in extra:
            print(f"node start (warm cache): {run['first_prediction']:.2f} s", flush=True)
        result = {"modes": results, **summarise(results, extra)}
        print_report(result, args, versions)
        changed = tree["cprsdk_uncommitted"]
        print(f"tree: commit {tree['commit']}" + (f", with uncommitted changes in {len(changed)} file(s) under cprsdk/"
                                                   if changed else ", cprsdk/ clean"))
    if args.json:
        out = {"args": {k: v for k, v in vars(args).items() if k != "json"}, "machine": machine(),
               "packages": versions, "load_end": load(), "tree": tree,
               "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), **result}
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
