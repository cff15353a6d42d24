"""`cprsdk batch predict` (local engine) against a hand-written single-process loop, on JSON-lines rows.

On a trained copy of samples/zerocenterer-sklearn, in one run:

- the input: `--rows` (default 1,000,000) JSON lines, each a list of 4 floats (seeded, iris-like);
- the baseline: a fresh interpreter that loads the predictor with `cprsdk.load_predictor(
  "predictor.MyPredictor", model_dir, paths=[copy])`, reads the file line by line, `json.loads` each
  line, calls `predict` on batches of `--batch-size` (1024) and writes one JSON line per row
  (`{"instance", "prediction"}`). It runs before and after the cprsdk runs; its whole wall time
  (start-up, imports, load, loop) is what is compared, and it reports its loop alone too;
- cprsdk: `cprsdk batch predict --model-dir model --package . --prediction-class
  predictor.MyPredictor --input rows.jsonl --output DIR --batch-size 1024 --shard-size S --workers W`
  as a subprocess, for every `--shard-sizes` S and `--workers` W, each into a fresh output, with a
  warm cprsdk cache (an untimed warm-up run fills it). Its whole wall time is compared: it builds
  the sdist of the copy, spawns its workers, loads the predictor in each, scores, commits the
  shards and writes results.csv, errors.csv and summary.json;
- the fixed cost: the same command on the first 1,000 rows, for each worker count, so that the
  marginal rate ((rows - 1000) / (wall - wall at 1,000 rows)) can be told from the start-up;
- every cprsdk run is checked: summary SUCCEEDED with every row succeeded, and its predictions,
  in order, equal to the baseline's for the same rows;
- the memory run: `--memory-rows` (default 10,000,000) JSON lines of about 200 bytes (about 2 GB),
  `--key-field id --instance-type array --included-fields a,b,c,d`, 2 workers, shard 10,000; the
  peak RSS (VmHWM, polled from /proc) of the command's process and of each of its workers;
- `--profile`: one more cprsdk run (`--workers 1`, the first shard size) under `python -m cProfile -o`,
  whose parent process time is split by phase (the workers are other processes: py-spy
  `record --subprocesses` sees them, see docs/benchmarks.md).

The targets (issue 13): cprsdk's rows/s at least 0.8x the baseline's with 1 worker and 1.5x with 2
workers (TARGETS). Every subprocess is bounded by `--timeout` seconds.

    .venv/bin/python bench/bench_batch.py [--rows 1000000] [--shard-sizes 10000,50000] [--memory-rows 10000000]
                                          [--profile] [--json PATH]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pstats
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import REPO, cprsdk_command, load, machine, shown, trained_sample

PREDICTOR = "predictor.MyPredictor"
SMALL = 1000  # rows of the fixed-cost runs
TARGETS = {1: 0.8, 2: 1.5}  # workers -> the least ratio of cprsdk's rows/s to the loop's (issue 13)


# ---------------------------------------------------------------- the input


def write_rows(path: Path, count: int) -> None:
    rng = random.Random(0)
    with path.open("w", encoding="utf-8") as out:
        for start in range(0, count, 10_000):
            out.write("".join(
                json.dumps([round(rng.uniform(4.3, 7.9), 2), round(rng.uniform(2.0, 4.4), 2),
                            round(rng.uniform(1.0, 6.9), 2), round(rng.uniform(0.1, 2.5), 2)]) + "\n"
                for _ in range(min(10_000, count - start))))


def write_padded_rows(path: Path, count: int) -> None:
    """About 200 bytes a line: {"id", "a".."d" (the features), "pad"}; 10,000,000 of them are about 2 GB."""
    rng = random.Random(1)
    pad = "x" * 120
    bounds = {"a": (4.3, 7.9), "b": (2.0, 4.4), "c": (1.0, 6.9), "d": (0.1, 2.5)}

    def line(i: int) -> str:
        features = {name: round(rng.uniform(low, high), 2) for name, (low, high) in bounds.items()}
        return json.dumps({"id": f"row-{i:08d}", **features, "pad": pad}) + "\n"

    with path.open("w", encoding="utf-8") as out:
        for start in range(0, count, 10_000):
            out.write("".join(line(i) for i in range(start, min(start + 10_000, count))))


def head(src: Path, dest: Path, count: int) -> None:
    with src.open(encoding="utf-8") as f:
        dest.write_text("".join(itertools.islice(f, count)), encoding="utf-8")


# ---------------------------------------------------------------- the baseline (a child process)


def baseline_child(sample: Path, source: Path, dest: Path, batch_size: int) -> None:
    """The hand-written loop: read, batch, predict, write. Prints its split as JSON on stdout."""
    start = time.perf_counter()
    sys.path.insert(0, str(REPO))  # this checkout's cprsdk, whatever is installed
    from cprsdk import load_predictor

    predictor = load_predictor(PREDICTOR, sample / "model", paths=[sample])
    loaded = time.perf_counter()
    count = 0
    with source.open(encoding="utf-8") as f, dest.open("w", encoding="utf-8") as out:
        batch: list[Any] = []

        def flush() -> None:
            predictions = predictor.predict(batch)
            out.write("".join(json.dumps({"instance": i, "prediction": p}) + "\n"
                              for i, p in zip(batch, predictions, strict=True)))

        for line in f:
            if line.strip():
                batch.append(json.loads(line))
                count += 1
                if len(batch) == batch_size:
                    flush()
                    batch = []
        if batch:
            flush()
    done = time.perf_counter()
    print(json.dumps({"rows": count, "load": loaded - start, "loop": done - loaded}))


# ---------------------------------------------------------------- running things


def run(cmd: Sequence[str], *, cwd: Path, env: dict[str, str], timeout: float) -> tuple[float, str]:
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"{shown(cmd)} took over {timeout:.0f} s (--timeout); try a smaller --rows") from None
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{shown(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return wall, proc.stdout


def baseline(sample: Path, source: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    dest = work / "baseline.jsonl"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--baseline-child", str(sample), str(source), str(dest),
           "--batch-size", str(args.batch_size)]
    wall, out = run(cmd, cwd=work, env={}, timeout=args.timeout)
    split = json.loads(out.strip().splitlines()[-1])
    return {"wall": wall, **split, "rows_per_s": split["rows"] / wall, "loop_rows_per_s": split["rows"] / split["loop"]}


def batch_cmd(source: Path, output: Path, *, batch_size: int, shard_size: int, workers: int) -> list[str]:
    return ["batch", "predict", "--model-dir", "model", "--package", ".", "--prediction-class", PREDICTOR,
            "--input", str(source), "--output", str(output), "--batch-size", str(batch_size),
            "--shard-size", str(shard_size), "--workers", str(workers)]


def cprsdk_run(sample: Path, source: Path, output: Path, env: dict[str, str], args: argparse.Namespace, *,
               shard_size: int, workers: int, rows: int, prefix: Sequence[str] | None = None) -> dict[str, Any]:
    shutil.rmtree(output, ignore_errors=True)
    cmd = [*(prefix or cprsdk_command()), *batch_cmd(source, output, batch_size=args.batch_size,
                                                      shard_size=shard_size, workers=workers)]
    wall, out = run(cmd, cwd=sample, env=env, timeout=args.timeout)
    summary = json.loads(out)
    if summary["state"] != "SUCCEEDED" or summary["succeeded"] != rows or summary["total"] != rows:
        raise SystemExit(f"cprsdk batch predict did not score every row: {summary}")
    return {"shard_size": shard_size, "workers": workers, "rows": rows, "wall": wall, "rows_per_s": rows / wall,
            "command": shown(cmd)}


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return found
    return found + [d for child in found for d in _descendants(child)]


def peak_rss(cmd: Sequence[str], *, cwd: Path, env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run ``cmd``; its wall time and the peak RSS (VmHWM from /proc, polled) of it and of each descendant."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    parent, workers = 0, {}
    while proc.poll() is None:
        if time.perf_counter() - start > timeout:
            proc.kill()
            raise SystemExit(f"{shown(cmd)} took over {timeout:.0f} s (--timeout)")
        parent = max(parent, _status_kb(proc.pid, "VmHWM"))
        for child in _descendants(proc.pid):
            workers[child] = max(workers.get(child, 0), _status_kb(child, "VmHWM"))
        time.sleep(0.1)
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode:
        raise SystemExit(f"{shown(cmd)} exited {proc.returncode}")
    return {"wall": time.perf_counter() - start, "parent_peak_mb": parent / 1024,
            "worker_peak_mb": max(workers.values(), default=0) / 1024, "processes_seen": len(workers),
            "summary": json.loads(out)}


def memory_run(sample: Path, work: Path, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    """--memory-rows padded JSON lines (about 2 GB at 10,000,000), 2 workers: peak RSS of the parent and workers."""
    source = work / "memory.jsonl"
    write_padded_rows(source, args.memory_rows)
    size = source.stat().st_size
    cmd = [*cprsdk_command(), "batch", "predict", "--model-dir", "model", "--package", ".", "--prediction-class",
           PREDICTOR, "--input", str(source), "--output", str(work / "out-memory"), "--batch-size",
           str(args.batch_size), "--shard-size", "10000", "--workers", "2", "--key-field", "id", "--instance-type",
           "array", "--included-fields", "a,b,c,d"]
    result = peak_rss(cmd, cwd=sample, env=env, timeout=args.timeout * 10)
    summary = result.pop("summary")
    if summary["state"] != "SUCCEEDED" or summary["succeeded"] != args.memory_rows:
        raise SystemExit(f"the memory run did not score every row: {summary}")
    source.unlink()
    shutil.rmtree(work / "out-memory", ignore_errors=True)
    return {"rows": args.memory_rows, "input_mb": size / 1e6, **result, "rows_per_s": args.memory_rows / result["wall"],
            "command": shown(cmd)}


def check_same(output: Path, expected: list[Any]) -> None:
    """cprsdk's predictions, in shard order, equal the baseline's."""
    got: list[Any] = []
    for part in sorted((output / "predictions").glob("part-*.jsonl")):
        got.extend(json.loads(line)["prediction"] for line in part.read_text(encoding="utf-8").splitlines())
    if got != expected[:len(got)] or len(got) != len(expected):
        raise SystemExit(f"cprsdk and the baseline disagree ({len(got)} predictions against {len(expected)})")


# ---------------------------------------------------------------- the parent's profile

# (label, file under cprsdk/ and function name whose cumulative time the phase is)
PHASES = [
    ("resolve the version: build, find the cached install (cli/batch._version)", "cli/batch.py", "_version"),
    ("scan the inputs for where shards begin (shards.plan)", "batch/shards.py", "plan"),
    ("wait for worker results (Engine.result)", "batch/engines.py", "result"),
    ("commit shards (commits.commit)", "batch/commits.py", "commit"),
    ("results.csv and errors.csv (commits.write_views)", "batch/commits.py", "write_views"),
    ("stop the worker pool (Engine.close)", "batch/engines.py", "close"),
]
_PROFILED = tuple(f"cprsdk/{file}" for _, file, _ in PHASES) + ("cprsdk/batch/jobs.py", "cprsdk/cli/__init__.py")


def profile_split(path: Path) -> dict[str, Any]:
    stats = pstats.Stats(str(path))
    table: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    cumulative: dict[tuple[str, str], float] = {}
    total = 0.0
    for (filename, _, name), (_, _, _, cum, _) in table.items():
        if filename.endswith(_PROFILED):
            key = (filename.rsplit("cprsdk/", 1)[1], name)
            cumulative[key] = cumulative.get(key, 0.0) + cum
        if name == "main" and filename.endswith("cprsdk/cli/__init__.py"):
            total = cum
    phases = {label: cumulative.get((file, name), 0.0) for label, file, name in PHASES}
    return {"cli_main": total, "run_job": cumulative.get(("batch/jobs.py", "run_job"), 0.0), "phases": phases}


# ---------------------------------------------------------------- report


def _verdict(ratio: float, target: float | None) -> str:
    return "no target" if target is None else f"target >= {target}: {'met' if ratio >= target else 'MISSED'}"


def report(args: argparse.Namespace, bases: list[dict[str, Any]], runs: list[dict[str, Any]],
           small: list[dict[str, Any]], prof: dict[str, Any] | None) -> dict[str, Any]:
    base_rate = sum(b["rows_per_s"] for b in bases) / len(bases)
    print(f"machine: {machine()}; load average at the end: {load()}")
    print(f"rows: {args.rows}; batch size {args.batch_size}")
    for i, b in enumerate(bases):
        print(f"baseline ({'before' if i == 0 else 'after'}): {b['wall']:.2f} s wall = {b['rows_per_s']:,.0f} rows/s "
              f"(load {b['load']:.2f} s, loop {b['loop']:.2f} s = {b['loop_rows_per_s']:,.0f} rows/s)")
    print(f"baseline rows/s, mean of the two: {base_rate:,.0f}")
    fixed = {s["workers"]: s["wall"] for s in small}
    for s in small:
        print(f"cprsdk, {SMALL} rows, workers {s['workers']}, shard {s['shard_size']}: {s['wall']:.2f} s (fixed cost)")
    verdicts = []
    for r in runs:
        ratio = r["rows_per_s"] / base_rate
        marginal = (r["rows"] - SMALL) / (r["wall"] - fixed[r["workers"]]) if r["workers"] in fixed else float("nan")
        one = next((x for x in runs if x["shard_size"] == r["shard_size"] and x["workers"] == 1), None)
        scaling = r["rows_per_s"] / one["rows_per_s"] if one else float("nan")
        verdicts.append({**r, "ratio": ratio, "marginal_rows_per_s": marginal, "scaling_vs_1": scaling})
        print(f"cprsdk shard {r['shard_size']:>6}, workers {r['workers']}: {r['wall']:6.2f} s"
              f" = {r['rows_per_s']:>9,.0f} rows/s; ratio to baseline {ratio:.2f}"
              f" ({_verdict(ratio, TARGETS.get(r['workers']))});"
              f" x{scaling:.2f} of 1 worker; marginal {marginal:,.0f} rows/s")
    if prof:
        print(f"parent profile (python -m cProfile, workers 1, shard {prof['shard_size']};"
              f" cProfile slows the parent: {prof['wall']:.2f} s wall):"
              f" cli main {prof['cli_main']:.2f} s, run_job {prof['run_job']:.2f} s")
        for label, seconds in prof["phases"].items():
            print(f"  {seconds:6.2f} s  {label}")
    return {"args": vars(args), "baseline": bases, "baseline_rows_per_s": base_rate, "fixed": small,
            "runs": verdicts, "profile": prof, "machine": machine(), "load": load()}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="JSON lines to score (default: 1000000)")
    parser.add_argument("--batch-size", type=int, default=1024, help="instances per predict call (default: 1024)")
    parser.add_argument("--shard-sizes", default="10000,50000",
                        help="cprsdk --shard-size values (default: 10000,50000)")
    parser.add_argument("--workers", default="1,2", help="cprsdk --workers values (default: 1,2)")
    parser.add_argument("--memory-rows", type=int, default=10_000_000,
                        help="rows of the memory run, about 200 bytes each (default: 10000000, about 2 GB; 0: skip)")
    parser.add_argument("--profile", action="store_true", help="also profile cprsdk's parent process with cProfile")
    parser.add_argument("--timeout", type=float, default=300, help="seconds allowed to each subprocess (default: 300)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    parser.add_argument("--baseline-child", nargs=3, metavar=("SAMPLE", "INPUT", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_child:
        sample_dir, source_path, dest_path = (Path(p) for p in args.baseline_child)
        baseline_child(sample_dir, source_path, dest_path, args.batch_size)
        return
    shard_sizes = [int(s) for s in args.shard_sizes.split(",")]
    worker_counts = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="cprsdk-bench-batch-") as tmp:
        work = Path(tmp)
        sample = trained_sample(work / "zerocenterer-sklearn")
        env = {"CPRSDK_CACHE_DIR": str(work / "cache"), "XDG_DATA_HOME": str(work / "xdg")}
        source, few = work / "rows.jsonl", work / "few.jsonl"
        write_rows(source, args.rows)
        head(source, few, SMALL)
        cprsdk_run(sample, few, work / "warm-up", env, args, shard_size=shard_sizes[0], workers=1,
                   rows=min(SMALL, args.rows))  # fills cprsdk's install cache; untimed
        bases = [baseline(sample, source, work, args)]
        expected = [json.loads(line)["prediction"]
                    for line in (work / "baseline.jsonl").read_text(encoding="utf-8").splitlines()]
        small = [cprsdk_run(sample, few, work / "small", env, args, shard_size=shard_sizes[0], workers=w,
                            rows=min(SMALL, args.rows)) for w in worker_counts]
        runs = []
        for shard_size in shard_sizes:
            for workers in worker_counts:
                output = work / f"out-{shard_size}-{workers}"
                runs.append(cprsdk_run(sample, source, output, env, args, shard_size=shard_size, workers=workers,
                                       rows=args.rows))
                check_same(output, expected)
                shutil.rmtree(output)
        bases.append(baseline(sample, source, work, args))
        prof = None
        if args.profile:
            prof_path = work / "parent.prof"
            prefix = [sys.executable, "-m", "cProfile", "-o", str(prof_path), "-m", "cprsdk"]
            timing = cprsdk_run(sample, source, work / "out-profile", env, args, shard_size=shard_sizes[0],
                                workers=1, rows=args.rows, prefix=prefix)
            prof = {**profile_split(prof_path), "wall": timing["wall"], "shard_size": shard_sizes[0]}
        memory = memory_run(sample, work, env, args) if args.memory_rows else None
    figures = report(args, bases, runs, small, prof)
    if memory:
        print(f"memory run: {memory['rows']:,} rows, {memory['input_mb']:,.0f} MB of JSON lines, 2 workers:"
              f" {memory['wall']:.1f} s = {memory['rows_per_s']:,.0f} rows/s; peak RSS parent"
              f" {memory['parent_peak_mb']:.0f} MB, largest worker {memory['worker_peak_mb']:.0f} MB"
              f" (target: parent < 300 MB, worker < 300 MB + the model)")
        figures["memory"] = memory
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
