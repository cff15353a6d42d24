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
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
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
    shown,
    spawn,
    timed,
    trained_sample,
    tree_state,
    wait_quiet,
    wrk_script,
)

MODEL, VERSION = "iris", "v1"
PATH = f"/v1/projects/bench/models/{MODEL}:predict"
BODY = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode()
EXPECTED = {"predictions": ["setosa"]}
TARGET_CONFINED, TARGET_UNCONFINED, TARGET_P99_MS = 0.7, 1.0, 0.5
TARGET_CONCURRENCY = 64
PROBE = Probe(PATH, BODY, lambda answer: answer == EXPECTED)


# ------------------------------------------------------------------ the run


def node_cmd(registry: Path, port: int) -> list[str]:
    return cprsdk_command() + ["serve", "--registry", str(registry), "--port", str(port), "--workers", "1"]


def ceiling_cmd(port: int, loop: str) -> list[str]:
    uvicorn = Path(sys.executable).with_name("uvicorn")
    head = [str(uvicorn)] if uvicorn.is_file() else [sys.executable, "-m", "uvicorn"]
    # The settings `cprsdk serve` gives uvicorn (cprsdk/node/server.py): warning log level, no access
    # log, lifespan on, loop and http "auto" (uvloop and httptools when installed). The ceiling matches.
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
                     env={"CPRSDK_CACHE_DIR": str(cache)}, cwd=work, logs=work, probe=PROBE)
        started.append(node)
        port = free_port()
        ceiling = spawn("ceiling", ceiling_cmd(port, loop), port=port, confined=confined, timeout=timeout,
                        env={"CEILING_SAMPLE": str(work / "sample")}, cwd=work, logs=work, probe=PROBE)
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
                        point = measure(server, concurrency, path=PATH, warmup=args.warmup, duration=args.duration,
                                        confined=confined, lua=lua)
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
                       env={"CPRSDK_CACHE_DIR": str(cache)}, cwd=work, logs=work, probe=PROBE)
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
    parser.add_argument("--ceiling-loop", choices=("asyncio", "uvloop"), default="uvloop",
                        help="the ceiling's event loop (default: uvloop, what `cprsdk serve` runs on)")
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
    versions = package_versions(("uvicorn", "httptools", "uvloop", "orjson", "scikit-learn", "numpy"))
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
        lua.write_text(wrk_script(BODY))
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
