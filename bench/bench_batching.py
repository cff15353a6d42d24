"""Dynamic batching side by side: the node with and without it, the in-process ceiling, MLServer 1.7.

Targets (issue 12, "Done when"), the sklearn sample, each server confined to core 0 and wrk on core 1:
- c=64, 1 instance per request: the node with batching >= 2.5x the ceiling's requests/s and >= 5x
  MLServer's (adaptive batching on);
- c=1: the node's p50 and p99 with batching within 0.2 ms of its figures without;
- 32 instances per request at c=64, without batching: >= 0.9x the ceiling;
- server CPU per request at every point.

What it does: trains a copy of samples/zerocenterer-sklearn in a temporary folder, `cprsdk deploy`s it
to a registry folder there (`iris/v1`), and starts each series under `taskset -c 0`:

- `node+batch`: `cprsdk serve --registry REG --workers 1 --max-batch-size 64 --max-batch-wait-ms 2`
  (skipped, with a line saying so, when `cprsdk serve --help` has no such flags);
- `node`: the same without the batching flags;
- `ceiling`: `ceiling_app.py` on uvicorn (uvloop, httptools, orjson), the predictor in-process;
- `mlserver`: MLServer 1.7 with adaptive batching (`max_batch_size` 64, `max_batch_time` 0.002,
  `parallel_workers` 0: inference in the server process, its fastest form on one core), serving the
  same predictor through a custom runtime (`mlserver_runtime.py`) from a virtualenv this script
  makes under `--cache-dir` (`pip install mlserver==1.7.* mlserver-sklearn==1.7.*` and this
  environment's scikit-learn version, so the same pickle loads).

For every point (instances per request x concurrency, each series in turn, the order rotating), a
`--warmup` of wrk, then `--duration` s of `wrk -t1 -cN --latency` under `taskset -c 1`, POSTing
{"instances": [[5.1, 3.5, 1.4, 0.2], ...]} (the V2 equivalent to MLServer). Server CPU per request is
utime+stime of the server and its children from /proc. Other work on the machine is measured
during each run; a run with more than 0.1 core of it is measured again, and a report with any such
run left says its figures are not for publishing.

At the points with a target, the series compared there are measured `--repeats` times each, in
turn, and compared by the medians of their runs (every run is printed): on a shared VM one run's
figures move by 10 to 30 % from run to run (a c=1 p99 by more than 0.2 ms), more than what the
targets tell apart. The other series and points are measured once.

    .venv/bin/python bench/bench_batching.py --duration 10 --json batching.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import (
    QUIET,
    REPO,
    Probe,
    Server,
    cprsdk_command,
    free_port,
    load,
    machine,
    measure,
    median,
    package_versions,
    spawn,
    timed,
    trained_sample,
    tree_state,
    wait_quiet,
    wrk_script,
)

MODEL, VERSION = "iris", "v1"
ROW, LABEL = [5.1, 3.5, 1.4, 0.2], "setosa"
AIP_PATH, V2_PATH = f"/v1/projects/bench/models/{MODEL}:predict", f"/v2/models/{MODEL}/infer"
SERIES = ("node+batch", "node", "ceiling", "mlserver")
MLSERVER = ("mlserver==1.7.*", "mlserver-sklearn==1.7.*")
TARGETS = {"batch_vs_ceiling": 2.5, "batch_vs_mlserver": 5.0, "c1_delta_ms": 0.2, "big_vs_ceiling": 0.9}


@dataclass(frozen=True)
class Point:
    instances: int
    concurrency: int


def aip_probe(n: int) -> Probe:
    body = json.dumps({"instances": [ROW] * n}, separators=(",", ":")).encode()
    return Probe(AIP_PATH, body, lambda a: a == {"predictions": [LABEL] * n})


def v2_probe(n: int) -> Probe:
    body = json.dumps({"inputs": [{"name": "input-0", "shape": [n, 4], "datatype": "FP64", "data": ROW * n}]},
                      separators=(",", ":")).encode()
    return Probe(V2_PATH, body, lambda a: [o.get("data") for o in a.get("outputs", [])] == [[LABEL] * n])


def probe_for(series: str, n: int) -> Probe:
    return v2_probe(n) if series == "mlserver" else aip_probe(n)


# ------------------------------------------------------------------ the servers


def serve_has_batching_flags() -> bool:
    out = subprocess.run(cprsdk_command() + ["serve", "--help"], capture_output=True, text=True).stdout
    return "--max-batch-size" in out and "--max-batch-wait-ms" in out


def node_cmd(registry: Path, port: int, *, batching: argparse.Namespace | None) -> list[str]:
    cmd = cprsdk_command() + ["serve", "--registry", str(registry), "--port", str(port), "--workers", "1"]
    if batching is not None:
        cmd += ["--max-batch-size", str(batching.max_batch_size),
                "--max-batch-wait-ms", f"{batching.max_batch_wait_ms:g}"]
    return cmd


def ceiling_cmd(port: int) -> list[str]:
    uvicorn = Path(sys.executable).with_name("uvicorn")
    head = [str(uvicorn)] if uvicorn.is_file() else [sys.executable, "-m", "uvicorn"]
    return head + ["ceiling_app:app", "--app-dir", str(REPO / "bench"), "--host", "127.0.0.1", "--port", str(port),
                   "--loop", "uvloop", "--http", "httptools", "--lifespan", "on", "--log-level", "warning",
                   "--no-access-log"]


def mlserver_install(cache: Path) -> Path:
    """MLServer 1.7 in a virtualenv of its own under ``cache`` (made once); the path of its ``mlserver``."""
    venv = cache / "mlserver-1.7"
    marker = venv / "cprsdk-bench-installed.txt"
    if not marker.is_file():
        sklearn = package_versions(("scikit-learn",)).get("scikit-learn")
        pins = MLSERVER + ((f"scikit-learn=={sklearn}",) if sklearn else ())
        print(f"installing {', '.join(pins)} into {venv} (once)", flush=True)
        cache.mkdir(parents=True, exist_ok=True)
        base = getattr(sys, "_base_executable", sys.executable)
        timed([base, "-m", "venv", "--clear", str(venv)], cwd=cache)
        timed([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *pins], cwd=cache)
        freeze = timed([str(venv / "bin" / "python"), "-m", "pip", "freeze"], cwd=cache).stdout
        marker.write_text(freeze)
    return venv / "bin" / "mlserver"


def mlserver_folder(work: Path, port: int, args: argparse.Namespace) -> Path:
    folder = work / f"mlserver-{port}"
    (folder / MODEL).mkdir(parents=True)
    settings = {"debug": False, "host": "127.0.0.1", "http_port": port, "grpc_port": free_port(),
                "metrics_port": free_port(), "parallel_workers": 0}
    (folder / "settings.json").write_text(json.dumps(settings))
    model = {"name": MODEL, "implementation": "mlserver_runtime.SamplePredictor",
             "max_batch_size": args.max_batch_size, "max_batch_time": args.max_batch_wait_ms / 1000}
    (folder / MODEL / "model-settings.json").write_text(json.dumps(model))
    return folder


def start(series: str, work: Path, args: argparse.Namespace) -> Server:
    port = free_port()
    env: dict[str, str] = {"CPRSDK_CACHE_DIR": str(work / "serve-cache")}
    if series in ("node", "node+batch"):
        cmd = node_cmd(work / "registry", port, batching=args if series == "node+batch" else None)
    elif series == "ceiling":
        cmd, env = ceiling_cmd(port), {"CEILING_SAMPLE": str(work / "sample")}
    else:
        cmd = [str(args.mlserver), "start", str(mlserver_folder(work, port, args))]
        env = {"SAMPLE_DIR": str(work / "sample"), "PYTHONPATH": str(REPO / "bench")}
    return spawn(series, cmd, port=port, confined=True, env=env, cwd=work, logs=work,
                 timeout=args.start_timeout, probe=probe_for(series, 1))


@contextmanager
def servers(work: Path, names: list[str], args: argparse.Namespace) -> Iterator[dict[str, Server]]:
    with ExitStack() as stack:
        started: dict[str, Server] = {}
        for name in names:
            started[name] = start(name, work, args)
            stack.callback(started[name].stop)
            print(f"{name} up in {started[name].startup['first_prediction']:.2f} s "
                  f"(cpus {sorted(set(started[name].info()['affinity'].values()))})", flush=True)
        yield started


# ------------------------------------------------------------------ the runs


def points(args: argparse.Namespace) -> list[Point]:
    grid = [Point(n, c) for n in args.instances for c in args.concurrency]
    return grid + ([Point(args.big, 64)] if args.big else [])


def series_at(point: Point, names: list[str], args: argparse.Namespace) -> list[str]:
    """The big-request point is node, node+batch and ceiling only (MLServer's limit counts requests)."""
    return [s for s in names if not (args.big and point.instances == args.big and s == "mlserver")]


def measure_point(server: Server, point: Point, lua: Path, args: argparse.Namespace) -> dict[str, Any]:
    for attempt in range(args.retries + 1):
        if args.quiet_wait > 0:
            wait_quiet(args.quiet_wait)
        result = measure(server, point.concurrency, path=probe_for(server.name, point.instances).path,
                         warmup=args.warmup, duration=args.duration, confined=True, lua=lua)
        if result["other_cores_busy"] <= QUIET or attempt == args.retries:
            break
        print(f"  {server.name} n={point.instances} c={point.concurrency}: disturbed "
              f"({result['other_cores_busy']:.2f} cores of other work), measuring again", flush=True)
    result.update(instances=point.instances, attempts=attempt + 1)
    return result


def repeated(point: Point, args: argparse.Namespace) -> tuple[str, ...]:
    """The series a target compares at ``point``: measured ``--repeats`` times each (see the module docstring)."""
    if point.concurrency == 1:
        return ("node+batch", "node")
    if point == Point(1, 64):
        return ("node+batch", "ceiling", "mlserver")
    if args.big and point == Point(args.big, 64):
        return ("node", "ceiling")
    return ()


def combined(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Repeated runs of one series at one point as one result: the median of each figure, and the runs."""
    if len(runs) == 1:
        return runs[0]
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, float) and key != "other_cores_busy":
            out[key] = median([r[key] for r in runs])
    out.update(other_cores_busy=max(r["other_cores_busy"] for r in runs), attempts=sum(r["attempts"] for r in runs),
               requests=sum(r["requests"] for r in runs), seconds=sum(r["seconds"] for r in runs),
               runs=[{k: r[k] for k in ("rps", "p50_ms", "p99_ms", "cpu_us_per_request", "other_cores_busy")}
                     for r in runs])
    return out


def run_all(work: Path, names: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    with servers(work, names, args) as running:
        for index, point in enumerate(points(args)):
            order = series_at(point, names, args)
            order = order[index % len(order):] + order[:index % len(order)]
            again = repeated(point, args)
            rounds = [order] + [[s for s in order if s in again]] * (args.repeats - 1 if again else 0)
            runs: dict[str, list[dict[str, Any]]] = {}
            for round_names in rounds:
                for name in round_names:
                    lua = work / f"{'v2' if name == 'mlserver' else 'aip'}-{point.instances}.lua"
                    if not lua.exists():
                        lua.write_text(wrk_script(probe_for(name, point.instances).body))
                    result = measure_point(running[name], point, lua, args)
                    runs.setdefault(name, []).append(result)
                    print(f"n={point.instances:<2} c={point.concurrency:<3} {name:<10} {result['rps']:>7.0f} req/s  "
                          f"p50 {result['p50_ms']:.3f} ms  p99 {result['p99_ms']:.3f} ms  "
                          f"cpu {result['cpu_us_per_request']:.0f} us/req  others {result['other_cores_busy']:.2f}",
                          flush=True)
            results += [combined(runs[name]) for name in order]
    return results


# ------------------------------------------------------------------ the report


Verdict = tuple[str, "float | None", str, "bool | None", "float | None"]


def verdicts(results: list[dict[str, Any]], big: int) -> list[Verdict]:
    """(what, value, target, met, the same ratio from CPU per request: on one core req/s ~ 1 / CPU)."""
    at = {(r["server"], r["instances"], r["concurrency"]): r for r in results}

    def ratios(a: str, b: str, n: int, c: int) -> tuple[float | None, float | None]:
        if (a, n, c) not in at or (b, n, c) not in at:
            return None, None
        x, y = at[(a, n, c)], at[(b, n, c)]
        return x["rps"] / y["rps"], y["cpu_us_per_request"] / x["cpu_us_per_request"]

    out: list[Verdict] = []
    for label, (value, cpu), target in (
            ("node+batch / ceiling req/s, n=1 c=64", ratios("node+batch", "ceiling", 1, 64),
             TARGETS["batch_vs_ceiling"]),
            ("node+batch / mlserver req/s, n=1 c=64", ratios("node+batch", "mlserver", 1, 64),
             TARGETS["batch_vs_mlserver"]),
            (f"node / ceiling req/s, n={big} c=64", ratios("node", "ceiling", big, 64), TARGETS["big_vs_ceiling"])):
        out.append((label, value, f">= {target}", None if value is None else value >= target, cpu))
    for n in sorted({r["instances"] for r in results if r["instances"] != big}):
        for q in ("p50_ms", "p99_ms"):
            on, off = at.get(("node+batch", n, 1)), at.get(("node", n, 1))
            delta = on[q] - off[q] if on and off else None
            limit = TARGETS["c1_delta_ms"]
            out.append((f"node+batch - node {q[:3]}, n={n} c=1 (ms)", delta, f"<= {limit}",
                        None if delta is None else delta <= limit, None))
    return out


def print_report(results: list[dict[str, Any]], args: argparse.Namespace, skipped: dict[str, str]) -> bool:
    print(f"\nmachine: {machine()}; load average at the end: {load()}")
    print("packages: " + ", ".join(f"{k} {v}" for k, v in package_versions(
        ("uvicorn", "httptools", "uvloop", "orjson", "scikit-learn", "numpy")).items()))
    for name, why in skipped.items():
        print(f"SKIPPED {name}: {why}")
    print(f"\n{'n':>3} {'c':>3} {'series':<10} | {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'cpu us/req':>10}"
          f" {'front+children':>14} | {'others':>6} {'tries':>5}")
    for r in sorted(results, key=lambda r: (r["instances"], r["concurrency"], SERIES.index(r["server"]))):
        split = f"{r['front_cpu_us_per_request']:.0f}+{r['children_cpu_us_per_request']:.0f}"
        print(f"{r['instances']:>3} {r['concurrency']:>3} {r['server']:<10} | {r['rps']:>7.0f} {r['p50_ms']:>7.3f}"
              f" {r['p99_ms']:>7.3f} {r['cpu_us_per_request']:>10.0f} {split:>14} |"
              f" {r['other_cores_busy']:>6.2f} {r['attempts']:>5}")
    several = [r for r in results if "runs" in r]
    if several:
        print(f"\nat the points with a target, medians of {len(several[0]['runs'])} runs each, in turn:")
        for r in several:
            figures = "; ".join(f"{label}: " + " ".join(f"{run[q]:.{digits}f}" for run in r["runs"])
                                for label, q, digits in (("req/s", "rps", 0), ("p50 ms", "p50_ms", 3),
                                                         ("p99 ms", "p99_ms", 3)))
            print(f"  n={r['instances']} c={r['concurrency']} {r['server']:<10} {figures}")
    print("\ntargets (issue 12):")
    for label, value, target, met, cpu in verdicts(results, args.big):
        shown = "n/a (a series is missing)" if value is None else f"{value:.2f}"
        state = "n/a" if met is None else ("MET" if met else "MISSED")
        by_cpu = "" if cpu is None else f" (from CPU per request, the steadier estimate on one core: {cpu:.2f})"
        print(f"  {label}: {shown}, target {target}: {state}{by_cpu}")
    worst = max((r["other_cores_busy"] for r in results), default=0.0)
    publishable = worst <= QUIET
    print(f"\nother work on the machine during the timed runs: up to {worst:.2f} cores; "
          + ("quiet enough to publish." if publishable else
             f"over {QUIET} core: these figures are NOT for publishing (re-run on a quiet machine)."))
    return publishable


def check_tools(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install -y wrk)")
    if shutil.which("taskset") is None or not {0, 1} <= os.sched_getaffinity(0):
        raise SystemExit("this benchmark needs taskset and cores 0 and 1 (server on 0, wrk on 1)")
    unknown = set(args.series) - set(SERIES)
    if unknown:
        raise SystemExit(f"--series takes {', '.join(SERIES)}; got {', '.join(sorted(unknown))}")


def chosen_series(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    names, skipped = list(args.series), {}
    if "node+batch" in names and not serve_has_batching_flags():
        names.remove("node+batch")
        skipped["node+batch"] = ("`cprsdk serve --help` has no --max-batch-size/--max-batch-wait-ms in this tree "
                                 "(dynamic batching is not built yet): that series is left out")
        print(f"SKIPPED node+batch: {skipped['node+batch']}", flush=True)
    if "mlserver" in names:
        args.mlserver = mlserver_install(Path(args.cache_dir).expanduser())
    return names, skipped


def parse_args() -> argparse.Namespace:
    def ints(text: str) -> list[int]:
        return [int(x) for x in text.split(",") if x]

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds of load per point (default: 10)")
    parser.add_argument("--warmup", type=float, default=2, help="untimed seconds before each (default: 2)")
    parser.add_argument("--concurrency", type=ints, default=[1, 8, 64], help="default: 1,8,64")
    parser.add_argument("--instances", type=ints, default=[1, 8], help="instances per request (default: 1,8)")
    parser.add_argument("--big", type=int, default=32, help="instances per request of the extra c=64 point "
                        "(node, node+batch, ceiling; 0: none; default: 32)")
    parser.add_argument("--repeats", type=int, default=5, metavar="K",
                        help="at the points with a target, measure the series compared there K times each, in "
                             "turn, and compare the medians (default: 5)")
    parser.add_argument("--series", type=lambda s: [x for x in s.split(",") if x], default=list(SERIES),
                        help=f"default: {','.join(SERIES)}")
    parser.add_argument("--max-batch-size", type=int, default=64, help="node+batch and MLServer (default: 64)")
    parser.add_argument("--max-batch-wait-ms", type=float, default=2.0, help="node+batch and MLServer (default: 2)")
    parser.add_argument("--cache-dir", default="~/.cache/cprsdk-bench", help="where MLServer's virtualenv is kept")
    parser.add_argument("--quiet-wait", type=float, default=60.0, metavar="S",
                        help=f"wait up to S s before each run for the machine to use <= {QUIET} core (default: 60)")
    parser.add_argument("--retries", type=int, default=2, help=f"re-measure a run with > {QUIET} core of other work")
    parser.add_argument("--start-timeout", type=float, default=180.0)
    parser.add_argument("--json", metavar="PATH", help="also write the raw figures to PATH")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds, so every server started is stopped
    check_tools(args)
    print(f"machine: {machine()}; load average at the start: {load()}", flush=True)
    names, skipped = chosen_series(args)
    tree = tree_state()
    with tempfile.TemporaryDirectory(prefix="cprsdk-bench-batching-") as tmp:
        work = Path(tmp)
        sample = trained_sample(work / "sample")
        timed(cprsdk_command() + ["deploy", str(sample), "--model", MODEL, "--version", VERSION, "--set-default",
                                  "--registry", str(work / "registry")],
              cwd=work, env={"CPRSDK_CACHE_DIR": str(work / "deploy-cache")})
        results = run_all(work, names, args)
        publishable = print_report(results, args, skipped)
    print(f"tree: commit {tree['commit']}" + (", cprsdk/ has uncommitted changes" if tree["cprsdk_uncommitted"]
                                             else ", cprsdk/ clean"))
    if args.json:
        out = {"args": {k: str(v) for k, v in vars(args).items() if k != "json"}, "machine": machine(),
               "load_end": load(), "tree": tree, "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
               "skipped": skipped, "publishable": publishable, "results": results,
               "verdicts": verdicts(results, args.big)}
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
