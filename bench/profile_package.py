"""Where `cprsdk package`'s time goes on the sklearn sample, step by step, through cprsdk's public API.

Per round, on a trained copy of the sample: the sdist build (`build_sdist`), the node-style
install (`installer.cached_site`: the wheel build and unpack), the clean-import check child
(`sandbox.run_job`) with every pickle reference and with only those the package provides, and
a fresh `python -I` importing the runtime modules the pickles reference, with a normal exit and
with `os._exit` (the difference is interpreter shutdown).

    .venv/bin/python bench/profile_package.py --rounds 3
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import machine, median, ms, trained_sample

from cprsdk.config import load_settings
from cprsdk.packaging.install import PackageFile, cached_site, sha256_file
from cprsdk.packaging.packager import build_sdist
from cprsdk.packaging.pickles import GlobalRef, find_pickles, scan_file
from cprsdk.runtime.sandbox import run_job


def pickle_refs(model_dir: Path) -> set[GlobalRef]:
    return {ref for path in find_pickles(sorted(model_dir.rglob("*"))) for ref in scan_file(path).references}


def check(site: Path, prediction_class: str, refs: list[GlobalRef], work: Path) -> float:
    job = {"kind": "check", "sites": [str(site)], "prediction_class": prediction_class,
           "references": [[r.module, r.name] for r in refs]}
    start = time.perf_counter()
    answer = run_job(job, cwd=work)
    assert answer["class"]["status"] == "ok", answer
    return time.perf_counter() - start


def import_only(modules: list[str], hard_exit: bool) -> float:
    code = f"import {', '.join(modules)}" + ("; import os; os._exit(0)" if hard_exit else "")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-I", "-c", code], check=True)
    return time.perf_counter() - start


def one_round(sample: Path, refs: set[GlobalRef], own: set[str]) -> dict[str, float]:
    settings = load_settings(str(sample), {})
    assert settings.prediction_class
    runtime = sorted({r.module for r in refs if r.module.split(".")[0] not in own})
    with tempfile.TemporaryDirectory(prefix="cprsdk-profile-") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        sdist, _ = build_sdist(settings, work / "build")
        built = time.perf_counter() - start
        start = time.perf_counter()
        package = PackageFile(sdist, sha256_file(sdist))
        site, _ = cached_site([package.sha256], lambda _folder: [package], root=work / "cache")
        installed = time.perf_counter() - start
        package_refs = sorted(r for r in refs if r.module.split(".")[0] in own)
        return {
            "build (2 hook processes)": built,
            "install (2 hook processes + unpack)": installed,
            "check child, every reference": check(site, settings.prediction_class, sorted(refs), work),
            "check child, package references only": check(site, settings.prediction_class, package_refs, work),
            "python -I: import runtime modules": import_only(runtime, hard_exit=False),
            "same, ending with os._exit": import_only(runtime, hard_exit=True),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default: 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cprsdk-profile-sample-") as tmp:
        sample = trained_sample(Path(tmp) / "zerocenterer-sklearn")
        refs = pickle_refs(sample / "model")
        own = {p.stem for p in sample.glob("*.py")}
        rounds = [one_round(sample, refs, own) for _ in range(args.rounds)]
    print(f"machine: {machine()}; {args.rounds} rounds, medians (min)")
    print(f"pickle references: {', '.join(sorted(map(str, refs)))}")
    for key in rounds[0]:
        values: list[Any] = [r[key] for r in rounds]
        print(f"  {key:<40} {ms(median(values)):>6} ms ({ms(min(values))})")


if __name__ == "__main__":
    main()
