"""`cprsdk local predict` of one instance of the sklearn sample: cold and warm cache, and its floor.

Each round runs, on a trained copy of the sample:

- cold: `cprsdk local predict --json-instances one.jsonl --timings` with an empty
  CPRSDK_CACHE_DIR (so it builds the sdist, builds the wheel and installs it);
- warm: the same command again with the cache the cold run filled;
- baseline: a fresh `python -I -c` that imports the prediction class from the sample folder and
  calls from_path + predict in-process: what any fresh interpreter must pay.

Wall times by `time.perf_counter` around each subprocess; the split is what `--timings` prints
on stderr (build, install, import, from_path, predict), and "other" is the wall time left over
(interpreter start-ups, cprsdk's own imports, JSON). One untimed warm-up of each comes first, so
"cold" means cprsdk's cache is empty, not the OS file cache.

    .venv/bin/python bench/bench_local_predict.py --rounds 5
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import cprsdk_command, load, machine, median, ms, shown, timed, trained_sample

SPLIT = ("build", "install", "import", "from_path", "predict")
MODULE, CLASS = "predictor", "MyPredictor"  # the sample's prediction_class (its cprsdk.toml)
_TIMING = re.compile(r"(\w+) (\d+) ms")
BASELINE = f"""\
import json, os, sys, time
sys.path.insert(0, os.getcwd())
t0 = time.perf_counter()
from {MODULE} import {CLASS}
t1 = time.perf_counter()
instance = {CLASS}.from_path("model")
t2 = time.perf_counter()
out = instance.predict(json.loads(sys.argv[1]))
t3 = time.perf_counter()
timings = {{"import": t1 - t0, "from_path": t2 - t1, "predict": t3 - t2}}
print(json.dumps({{"predictions": list(out), "timings": timings}}))
"""


def parse_timings(stderr: str) -> dict[str, float]:
    """The `timings: build 574 ms, install 566 ms, ...` line of `--timings`, in seconds."""
    line = next((x for x in stderr.splitlines() if x.startswith("timings: ")), None)
    if line is None:
        raise SystemExit(f"no timings line on stderr:\n{stderr}")
    return {key: int(value) / 1000 for key, value in _TIMING.findall(line)}


def local_predict(sample: Path, cache: Path) -> dict[str, Any]:
    cmd = cprsdk_command() + ["local", "predict", "--json-instances", "one.jsonl", "--timings"]
    run = timed(cmd, cwd=sample, env={"CPRSDK_CACHE_DIR": str(cache)})
    return {"wall": run.wall, "split": parse_timings(run.stderr), "body": json.loads(run.stdout)}


def baseline(sample: Path) -> dict[str, Any]:
    instances = "[" + (sample / "one.jsonl").read_text(encoding="utf-8").strip() + "]"
    run = timed([sys.executable, "-I", "-c", BASELINE, instances], cwd=sample)
    answer = json.loads(run.stdout)
    return {"wall": run.wall, "split": answer["timings"], "body": {"predictions": answer["predictions"]}}


def one_round(sample: Path, scratch: Path, index: int) -> dict[str, dict[str, Any]]:
    cache = scratch / f"cache-{index}"
    first = baseline(sample) if index % 2 else None
    cold = local_predict(sample, cache)
    warm = local_predict(sample, cache)
    return {"cold": cold, "warm": warm, "baseline": first or baseline(sample)}


def check_same_answer(rounds: list[dict[str, dict[str, Any]]]) -> None:
    bodies = {json.dumps(run["body"]) for r in rounds for run in r.values()}
    if len(bodies) != 1:
        raise SystemExit(f"the runs disagree: {sorted(bodies)}")


def summary(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for kind in ("cold", "warm", "baseline"):
        runs = [r[kind] for r in rounds]
        row = {"wall_median": median([x["wall"] for x in runs]), "wall_min": min(x["wall"] for x in runs)}
        row.update({k: median([x["split"][k] for x in runs]) for k in SPLIT if k in runs[0]["split"]})
        row["other"] = median([x["wall"] - sum(x["split"].values()) for x in runs])
        table[kind] = row
    return table


def print_report(table: dict[str, dict[str, float]], rounds: int, answer: Any) -> None:
    print(f"machine: {machine()}; load average at the end: {load()}")
    print(f"command: {shown(cprsdk_command())} local predict --json-instances one.jsonl --timings"
          f"  ({rounds} rounds; answer {json.dumps(answer)})")
    columns = ("wall_median", "wall_min", *SPLIT, "other")
    print(f"\n{'ms (medians)':<10} " + " ".join(f"{c:>11}" for c in columns))
    for kind, row in table.items():
        cells = " ".join(f"{ms(row[c]) if c in row else '-':>11}" for c in columns)
        print(f"{kind:<10} {cells}")
    cold, floor = table["cold"]["wall_median"], table["baseline"]["wall_median"]
    print(f"\ncold / baseline: {cold / floor:.2f}x; cold - baseline: {ms(cold - floor)} ms;"
          f" warm - baseline: {ms(table['warm']['wall_median'] - floor)} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default: 5)")
    parser.add_argument("--json", metavar="PATH", help="also write the raw figures to PATH")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cprsdk-bench-local-") as tmp:
        scratch = Path(tmp)
        sample = trained_sample(scratch / "zerocenterer-sklearn")
        first = (sample / "sample.jsonl").read_text(encoding="utf-8").splitlines()[0]
        (sample / "one.jsonl").write_text(first + "\n", encoding="utf-8")
        one_round(sample, scratch, -1)  # warm-up, untimed
        rounds = [one_round(sample, scratch, i) for i in range(args.rounds)]
    check_same_answer(rounds)
    table = summary(rounds)
    print_report(table, args.rounds, rounds[0]["cold"]["body"])
    if args.json:
        Path(args.json).write_text(json.dumps({"rounds": rounds, "medians": table}, indent=2) + "\n",
                                   encoding="utf-8")


if __name__ == "__main__":
    main()
