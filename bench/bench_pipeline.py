"""cprsdk's Pipeline against one-by-one: simulated URL fetches (20 ms each) and the sklearn sample's predictor.

On a trained copy of samples/zerocenterer-sklearn, in one run:

- one-by-one: for each item, fetch (sleep 20 ms) then `predictor.predict([row])`; timed on the
  first `--baseline-items` items (default 500) and extrapolated per item to `--items`, because
  10,000 items one by one take over 200 s;
- pipeline: `Pipeline().add(fetch, workers=32)` then `add_predictor("predictor.MyPredictor",
  model, paths=[sample], batch_size=128)`, over all `--items` (default 10,000) items, with the
  model stage in a thread (the configuration the target is for) and again, for information, in
  one worker process (`processes=True`; starting it, with scikit-learn's imports, is inside the
  timing, and a one-item run of that pipeline is timed to show that cost alone);
- the model stage alone: `predict` on batches of 128, to find where it would bound the pipeline;
- the pipeline's own overhead: 50,000 items through the same shape of pipeline whose stages do
  nothing.

The ideal speedup is `--readers` (32), unless the model stage cannot keep up: then it is one-by-one's
time per item over the model's time per item in batches. The target is at least 0.8x the ideal.
One-by-one also pays a `predict` call per item, so the measured speedup can exceed 32.
Every pipeline output must equal the one-by-one answer for the same row, with no errors.

    .venv/bin/python bench/bench_pipeline.py [--items 10000] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPO, load, machine, trained_sample

sys.path.insert(0, str(REPO))  # this checkout's cprsdk, whatever is installed

from cprsdk import load_predictor  # noqa: E402
from cprsdk.pipeline import Pipeline  # noqa: E402

PREDICTOR = "predictor.MyPredictor"
FETCH_SECONDS = 0.020


def fetch(row: list[float]) -> list[float]:
    """A simulated URL fetch: 20 ms of waiting, then the row."""
    time.sleep(FETCH_SECONDS)
    return row


def rows(count: int) -> list[list[float]]:
    rng = random.Random(0)
    return [[round(rng.uniform(4.3, 7.9), 1), round(rng.uniform(2.0, 4.4), 1),
             round(rng.uniform(1.0, 6.9), 1), round(rng.uniform(0.1, 2.5), 1)] for _ in range(count)]


def one_by_one(sample: Path, items: list[list[float]]) -> dict[str, Any]:
    predictor = load_predictor(PREDICTOR, sample / "model", paths=[sample])
    start = time.perf_counter()
    answers = [predictor.predict([fetch(row)])[0] for row in items]
    seconds = time.perf_counter() - start
    return {"items": len(items), "seconds": seconds, "per_item": seconds / len(items), "answers": answers}


def model_alone(sample: Path, items: list[list[float]], batch: int) -> dict[str, Any]:
    predictor = load_predictor(PREDICTOR, sample / "model", paths=[sample])
    batches = [items[i:i + batch] for i in range(0, min(len(items), 100 * batch), batch)]
    start = time.perf_counter()
    for chunk in batches:
        predictor.predict(chunk)
    seconds = time.perf_counter() - start
    count = sum(len(c) for c in batches)
    return {"items": count, "batch_size": batch, "seconds": seconds, "per_item": seconds / count}


def pipelined(sample: Path, items: list[list[float]], *, readers: int, batch: int, processes: bool) -> dict[str, Any]:
    pipe = Pipeline().add(fetch, workers=readers)
    pipe.add_predictor(PREDICTOR, sample / "model", paths=[sample], batch_size=batch, processes=processes)
    start = time.perf_counter()
    out = pipe(items)
    seconds = time.perf_counter() - start
    if pipe.errors or len(out) != len(items):
        raise SystemExit(f"pipeline lost items: {len(out)} outputs, {len(pipe.errors)} errors: "
                         f"{list(pipe.errors.values())[:3]}")
    return {"items": len(items), "seconds": seconds, "per_item": seconds / len(items),
            "processes": processes, "answers": [label for _, label in out]}


def same(value: Any) -> Any:
    return value


def overhead(readers: int, batch: int, count: int = 50_000) -> dict[str, Any]:
    """The pipeline's own cost: the same shape of pipeline with stages that do nothing."""
    pipe = Pipeline().add(same, workers=readers).add(same, batch_size=batch, name="batch")
    start = time.perf_counter()
    out = pipe(list(range(count)))
    seconds = time.perf_counter() - start
    if len(out) != count:
        raise SystemExit(f"the overhead run lost items: {len(out)} of {count}")
    return {"items": count, "seconds": seconds, "per_item": seconds / count}


def verdicts(base: dict[str, Any], model: dict[str, Any], runs: list[dict[str, Any]],
             readers: int) -> list[dict[str, Any]]:
    ideal = min(float(readers), base["per_item"] / model["per_item"])
    return [{"model_in": "process" if run["processes"] else "thread", "seconds": run["seconds"],
             "speedup": base["per_item"] / run["per_item"], "ideal": ideal,
             "of_ideal": base["per_item"] / run["per_item"] / ideal} for run in runs]


def check_answers(base: dict[str, Any], runs: list[dict[str, Any]]) -> None:
    for run in runs:
        if run["answers"][:base["items"]] != base["answers"]:
            raise SystemExit("the pipeline and one-by-one disagree on the same rows")


def report(args: argparse.Namespace, base: dict[str, Any], model: dict[str, Any],
           rows_out: list[dict[str, Any]], startup: float, machinery: dict[str, Any]) -> None:
    print(f"machine: {machine()}; load average at the end: {load()}")
    print(f"items: {args.items}; fetch {FETCH_SECONDS * 1000:.0f} ms each; {args.readers} readers; "
          f"batch {args.batch_size}")
    extrapolated = base["per_item"] * args.items
    print(f"one-by-one: {base['items']} items in {base['seconds']:.2f} s = {base['per_item'] * 1000:.2f} ms/item"
          f" -> {extrapolated:.1f} s for {args.items} (extrapolated)")
    print(f"model stage alone: {model['per_item'] * 1e6:.1f} us/item in batches of {model['batch_size']}"
          f" ({1 / model['per_item']:.0f} items/s; fetches at {args.readers} readers: "
          f"{args.readers / FETCH_SECONDS:.0f} items/s)")
    print(f"pipeline overhead: {machinery['per_item'] * 1e6:.1f} us/item ({machinery['items']} items through "
          f"{args.readers} workers and a batch of {args.batch_size} that do nothing: "
          f"{1 / machinery['per_item']:.0f} items/s)")
    print(f"fetch floor: {args.items} x {FETCH_SECONDS * 1000:.0f} ms / {args.readers} readers = "
          f"{args.items * FETCH_SECONDS / args.readers:.2f} s")
    for row in rows_out:
        verdict = ("target >= 0.80: " + ("met" if row["of_ideal"] >= 0.8 else "MISSED") if row["model_in"] == "thread"
                   else f"for information: includes starting the worker process, {startup:.2f} s for 1 item alone")
        print(f"pipeline, model in a {row['model_in']:<7}: {row['seconds']:.2f} s = "
              f"{row['seconds'] / args.items * 1000:.3f} ms/item; speedup {row['speedup']:.1f}x of ideal "
              f"{row['ideal']:.1f}x = {row['of_ideal']:.2f} ({verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000, help="items through the pipeline (default: 10000)")
    parser.add_argument("--baseline-items", type=int, default=500,
                        help="items timed one by one, extrapolated per item (default: 500)")
    parser.add_argument("--readers", type=int, default=32, help="fetch workers (default: 32)")
    parser.add_argument("--batch-size", type=int, default=128, help="model batch size (default: 128)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    args = parser.parse_args()
    items = rows(args.items)
    with tempfile.TemporaryDirectory(prefix="cprsdk-bench-pipeline-") as tmp:
        sample = trained_sample(Path(tmp) / "zerocenterer-sklearn")
        base = one_by_one(sample, items[:min(args.baseline_items, args.items)])
        model = model_alone(sample, items, args.batch_size)
        runs = [pipelined(sample, items, readers=args.readers, batch=args.batch_size, processes=p)
                for p in (False, True)]
        startup = pipelined(sample, items[:1], readers=1, batch=1, processes=True)["seconds"]
    machinery = overhead(args.readers, args.batch_size)
    check_answers(base, runs)
    rows_out = verdicts(base, model, runs, args.readers)
    report(args, base, model, rows_out, startup, machinery)
    if args.json:
        figures = {"args": vars(args), "one_by_one": {k: v for k, v in base.items() if k != "answers"},
                   "model_alone": model, "pipeline": rows_out, "process_startup": startup, "overhead": machinery,
                   "fetch_floor": args.items * FETCH_SECONDS / args.readers, "machine": machine(), "load": load()}
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
