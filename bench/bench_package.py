"""`cprsdk package` (all checks) against `python -m build --sdist` (isolated) on the same sample.

Target (issue tracker): cprsdk's wall time at most half of `python -m build --sdist`'s.

The sample is a bare folder: cprsdk renders its pyproject.toml. `python -m build` gets a fresh
copy of the trained sample folder each round plus the pyproject.toml taken out of the sdist
cprsdk built in the warm-up, so both build the same files with the same backend. Rounds
alternate the order (cprsdk first, then build first, ...); every cprsdk round has a fresh
CPRSDK_CACHE_DIR and --out folder; nothing is reused between rounds but the OS file cache and
pip's own cache, which `python -m build` uses by default.

    .venv/bin/python bench/bench_package.py --rounds 5
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from common import Run, copy_tree, cprsdk_command, load, machine, median, ms, shown, timed, trained_sample

TARGET = 0.5
STEPS = ("model_checks", "build", "import_check")


def cprsdk_package(sample: Path, scratch: Path, tag: str) -> tuple[Run, dict[str, Any]]:
    """`cprsdk package . --format json`, with a fresh cache and output folder."""
    env = {"CPRSDK_CACHE_DIR": str(scratch / f"cache-{tag}")}
    cmd = cprsdk_command() + ["package", ".", "--out", str(scratch / f"out-{tag}"), "--format", "json"]
    run = timed(cmd, cwd=sample, env=env)
    return run, json.loads(run.stdout)


def python_build(sample: Path, pyproject: str, scratch: Path, tag: str) -> tuple[Run, Path]:
    """`python -m build --sdist` (isolated: its default) on a fresh copy that holds the pyproject.toml."""
    src = copy_tree(sample, scratch / f"build-src-{tag}")
    (src / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    out = scratch / f"build-out-{tag}"
    run = timed([sys.executable, "-m", "build", "--sdist", "--outdir", str(out), "."], cwd=src)
    return run, next(out.glob("*.tar.gz"))


def _members(sdist: Path) -> dict[str, str]:
    """File member name without the top folder -> full member name."""
    found = {}
    with tarfile.open(sdist) as tar:
        for info in tar.getmembers():
            if info.isfile():
                found[info.name.partition("/")[2]] = info.name
    return found


def rendered_pyproject(sdist: Path) -> str:
    """The pyproject.toml cprsdk rendered for the bare folder, as shipped in its sdist."""
    member = _members(sdist)["pyproject.toml"]
    with tarfile.open(sdist) as tar:
        data = tar.extractfile(member)
        assert data is not None
        return data.read().decode("utf-8")


def one_round(sample: Path, pyproject: str, scratch: Path, index: int) -> dict[str, Any]:
    tag = str(index)
    if index % 2:
        build_run, _ = python_build(sample, pyproject, scratch, tag)
        cpr_run, report = cprsdk_package(sample, scratch, tag)
    else:
        cpr_run, report = cprsdk_package(sample, scratch, tag)
        build_run, _ = python_build(sample, pyproject, scratch, tag)
    return {"cprsdk": cpr_run.wall, "build": build_run.wall, "timings": report["timings"]}


def warm_up(sample: Path, scratch: Path) -> tuple[str, set[str], set[str]]:
    """One untimed run of each; returns the rendered pyproject.toml and both sdists' file lists."""
    _, report = cprsdk_package(sample, scratch, "warmup")
    pyproject = rendered_pyproject(Path(report["sdist"]))
    _, built = python_build(sample, pyproject, scratch, "warmup")
    return pyproject, set(_members(Path(report["sdist"]))), set(_members(built))


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    cpr = [r["cprsdk"] for r in rounds]
    bld = [r["build"] for r in rounds]
    steps = {k: median([r["timings"].get(k, 0.0) for r in rounds]) for k in STEPS}
    other = median([r["cprsdk"] - sum(r["timings"].get(k, 0.0) for k in STEPS) for r in rounds])
    return {"cprsdk": {"median": median(cpr), "min": min(cpr)}, "build": {"median": median(bld), "min": min(bld)},
            "ratio_median": median(cpr) / median(bld), "ratio_min": min(cpr) / min(bld),
            "cprsdk_timings_median": {**steps, "other": other}}


def print_report(rounds: list[dict[str, Any]], result: dict[str, Any], same: tuple[set[str], set[str]]) -> None:
    print(f"machine: {machine()}; load average at the end: {load()}")
    print(f"commands: {shown(cprsdk_command())} package . --out DIR --format json"
          "  vs  python -m build --sdist --outdir DIR .  (both in the sample folder)")
    print("\nwall ms: cprsdk package | python -m build --sdist || cprsdk's report: " + ", ".join(STEPS))
    for i, r in enumerate(rounds, 1):
        steps = ", ".join(ms(r["timings"].get(k, 0.0)) for k in STEPS)
        print(f"round {i}: {ms(r['cprsdk']):>5} | {ms(r['build']):>5} || {steps}")
    print("\n                          median ms   min ms")
    for key, label in (("cprsdk", "cprsdk package"), ("build", "python -m build --sdist")):
        print(f"{label:<24}  {ms(result[key]['median']):>9}  {ms(result[key]['min']):>7}")
    verdict = "MET" if result["ratio_median"] <= TARGET else "MISSED"
    print(f"\nratio cprsdk/build: {result['ratio_median']:.2f} (medians), {result['ratio_min']:.2f} (mins);"
          f" target <= {TARGET}: {verdict}")
    parts = ", ".join(f"{k} {ms(v)} ms" for k, v in result["cprsdk_timings_median"].items())
    print(f"cprsdk report timings (medians): {parts}  (other = wall - the three)")
    ours, theirs = same
    print("sdist files: " + ("identical lists" if ours == theirs else
                             f"cprsdk only {sorted(ours - theirs)}, build only {sorted(theirs - ours)}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds of each (default: 5)")
    parser.add_argument("--json", metavar="PATH", help="also write the raw figures to PATH")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cprsdk-bench-package-") as tmp:
        scratch = Path(tmp)
        sample = trained_sample(scratch / "zerocenterer-sklearn")
        pyproject, ours, theirs = warm_up(sample, scratch)
        rounds = [one_round(sample, pyproject, scratch, i) for i in range(args.rounds)]
    result = summary(rounds)
    print_report(rounds, result, (ours, theirs))
    if args.json:
        Path(args.json).write_text(json.dumps({"rounds": rounds, **result}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
