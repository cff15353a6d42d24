"""`cprsdk deploy` of a 200 MB model directory to gcp-storage-emulator, against a plain upload loop.

Target (issue tracker): a deploy of a 200 MB model directory of 20 files to the GCS emulator at
least 80 % of the throughput of a plain loop of `blob.upload_from_filename` over the same files,
side by side in one run; a re-deploy of unchanged artifacts sends no model bytes.

The project is a trained copy of the sklearn sample plus 20 files of 10 MB (10^7 bytes) of random
bytes in its model/ folder. gcp-storage-emulator (in memory) runs as a child process on a free
127.0.0.1 port, outside the process that times the in-process uploads, and every measurement gets
a fresh one: the emulator answers one request at a time and slows down as it holds more data.
Each round, in alternating order:

- deploy: `cprsdk deploy PROJECT --model m --version vN --registry gs://BUCKET/reg --format json`
  as a subprocess (wall time, uploadedBytes); then, against the same server, a re-deploy of the
  unchanged project as a new version (wall time, uploadedBytes, reusedFiles);
- upload step: `cprsdk.storage.upload_many(open_store("gs://BUCKET/reg"), items)` in-process over
  the same 20 files, as deploy calls it: (path, content-address key, sha256) items;
- baseline: `bucket.blob(name).upload_from_filename(path)` in a plain loop over the same 20 files,
  with google-cloud-storage's defaults, in-process: the reference for the target;
- baseline script: the same loop as a fresh `python -c` child, for context: like `cprsdk deploy` it
  pays an interpreter start-up and google-cloud-storage's import.

Throughput is bytes sent (deploy's uploadedBytes; 200 MB for the others) over wall time; clients
are created inside the timed region on both sides.

After the timed runs of a round, diagnostics that are not compared with anything: one deploy and
one re-deploy without `--format json`, whose step lines on stderr are time-stamped as they arrive
(the split), and an in-process `upload_many` over the 20 files already stored (all skipped: what
the re-deploy's per-blob existence checks cost).

`--variants` times, instead, the upload step changed one way at a time against the baseline
loop: the thread count, the resumable chunk size (cprsdk's private 8 MiB constant, patched), no
sha256 check of the bytes sent, and one listing of the blob prefix instead of a stat per file.

    .venv/bin/python bench/bench_deploy.py --rounds 3
    .venv/bin/python bench/bench_deploy.py --variants --rounds 5
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import cprsdk_command, free_port, load, machine, median, ms, shown, timed, trained_sample

TARGET = 0.8
FILES, FILE_BYTES = 20, 10_000_000
MB, MiB = 1_000_000, 1 << 20
MODEL = "m"
BASELINE_SCRIPT = """\
import sys
from pathlib import Path
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
bucket = storage.Client(project="cprsdk-bench", credentials=AnonymousCredentials()).bucket(sys.argv[1])
for path in sys.argv[2:]:
    bucket.blob("baseline/" + Path(path).name).upload_from_filename(path)
"""
# Deploy's step lines on stderr (`... <step>`), in order: the start of each phase of the split.
PHASES = (("checks", "checking the model directory quota"), ("hashing", "hashing the model directory"),
          ("upload+publish", "uploading to "))


# ------------------------------------------------------------------ the emulator


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gcp-storage-emulator exited {proc.returncode} before it listened")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise SystemExit(f"gcp-storage-emulator did not listen on 127.0.0.1:{port} within {timeout:g} s")


@contextlib.contextmanager
def emulator() -> Iterator[str]:
    """A fresh in-memory gcp-storage-emulator child process; STORAGE_EMULATOR_HOST points at it."""
    port = free_port()
    cmd = [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", str(port),
           "--in-memory", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(port, proc)
        os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"  # for this process and its children
        yield os.environ["STORAGE_EMULATOR_HOST"]
    finally:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
        proc.terminate()
        proc.wait(timeout=10)


def gcs_client() -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="cprsdk-bench", credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]


@contextlib.contextmanager
def fresh_bucket(name: str = "cprsdk-bench") -> Iterator[str]:
    """A bucket in a fresh emulator, for one measurement."""
    with emulator():
        client = gcs_client()
        client.create_bucket(name)
        client.close()
        yield name


# ------------------------------------------------------------------ the project


def make_project(dest: Path) -> tuple[Path, list[tuple[Path, str]]]:
    """The trained sample plus FILES random files in model/; returns it and (file, sha256) pairs."""
    project = trained_sample(dest)
    files = []
    for i in range(FILES):
        path = project / "model" / f"weights-{i:02d}.bin"
        data = os.urandom(FILE_BYTES)
        path.write_bytes(data)
        files.append((path, hashlib.sha256(data).hexdigest()))
    return project, files


def blob_items(files: list[tuple[Path, str]]) -> list[tuple[Path, str, str]]:
    """The (path, key, sha256) items deploy uploads for these files (content-address keys, checked digests)."""
    from cprsdk.registry.registry import Registry

    return [(path, Registry.blob_key(digest), digest) for path, digest in files]


# ------------------------------------------------------------------ the measurements


def deploy_cmd(project: Path, bucket: str, version: str, *, as_json: bool = True) -> list[str]:
    cmd = cprsdk_command() + ["deploy", str(project), "--model", MODEL, "--version", version,
                              "--registry", f"gs://{bucket}/reg"]
    return cmd + ["--format", "json"] if as_json else cmd


def cprsdk_deploy(project: Path, bucket: str, version: str, scratch: Path) -> dict[str, Any]:
    run = timed(deploy_cmd(project, bucket, version), cwd=scratch, env={"CPRSDK_CACHE_DIR": str(scratch / "cache")})
    report = json.loads(run.stdout)
    keys = ("uploadedFiles", "uploadedBytes", "reusedFiles", "reusedBytes", "seconds")
    return {"wall": run.wall, **{k: report[k] for k in keys}}


def deploy_and_redeploy(project: Path, scratch: Path, index: int) -> dict[str, Any]:
    with fresh_bucket() as bucket:
        first = cprsdk_deploy(project, bucket, f"v{index}", scratch)
        again = cprsdk_deploy(project, bucket, f"v{index}_again", scratch)
    return {"deploy": first, "redeploy": again}


def timed_call(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def upload_step(files: list[tuple[Path, str]]) -> float:
    """`upload_many` over the files into a fresh bucket: seconds, client creation included."""
    from cprsdk.storage import open_store, upload_many

    items = blob_items(files)
    with fresh_bucket() as bucket:
        def run() -> None:
            stats = upload_many(open_store(f"gs://{bucket}/reg"), items, progress=False)
            assert stats.uploaded_bytes == FILES * FILE_BYTES, stats
        return timed_call(run)


def baseline(files: list[tuple[Path, str]]) -> float:
    """A plain loop of `upload_from_filename` into a fresh bucket: seconds, client creation included."""
    with fresh_bucket() as bucket:
        def run() -> None:
            target = gcs_client().bucket(bucket)
            for path, _ in files:
                target.blob(f"baseline/{path.name}").upload_from_filename(str(path))
        return timed_call(run)


def baseline_script(files: list[tuple[Path, str]], scratch: Path) -> float:
    """The same loop as a fresh `python -c` child: wall seconds, interpreter start-up and imports included."""
    with fresh_bucket() as bucket:
        return timed([sys.executable, "-c", BASELINE_SCRIPT, bucket, *(str(p) for p, _ in files)], cwd=scratch).wall


def one_round(project: Path, files: list[tuple[Path, str]], scratch: Path, index: int) -> dict[str, Any]:
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("cprsdk", lambda: deploy_and_redeploy(project, scratch, index)),
        ("upload_many", lambda: upload_step(files)),
        ("baseline", lambda: baseline(files)),
        ("baseline_script", lambda: baseline_script(files, scratch)),
    ]
    result = {name: fn() for name, fn in (steps if index % 2 == 0 else steps[::-1])}
    return {"deploy": result["cprsdk"]["deploy"], "redeploy": result["cprsdk"]["redeploy"],
            "upload_many": result["upload_many"], "baseline": result["baseline"],
            "baseline_script": result["baseline_script"],
            "order": "deploy first" if index % 2 == 0 else "baseline first"}


# ------------------------------------------------------------------ diagnostics: the split


def stamped(cmd: list[str], *, cwd: Path, env: dict[str, str]) -> tuple[float, list[tuple[float, str]], str]:
    """Run ``cmd``; its wall time and each stderr line with the time it arrived, from the start."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read() if proc.stdout else ""))
    reader.start()
    lines = [(time.perf_counter() - start, line.rstrip("\n")) for line in proc.stderr or ()]
    code = proc.wait()
    wall = time.perf_counter() - start
    reader.join()
    if code:
        raise SystemExit(f"{shown(cmd)} exited {code}:\n{''.join(out)}\n" + "\n".join(t for _, t in lines))
    return wall, lines, "".join(out)


def split(wall: float, lines: list[tuple[float, str]]) -> dict[str, float]:
    """Phase durations from the step lines: start-up, checks, hashing, upload+publish (to exit)."""
    marks = [("start-up", 0.0)]
    for phase, text in PHASES:
        at = next((t for t, line in lines if line.startswith("... " + text)), None)
        if at is None:
            raise SystemExit(f"no step line {text!r} on stderr:\n" + "\n".join(x for _, x in lines))
        marks.append((phase, at))
    ends = [t for _, t in marks[1:]] + [wall]
    return {phase: end - begin for (phase, begin), end in zip(marks, ends, strict=True)}


def skipped_upload(files: list[tuple[Path, str]], bucket: str) -> float:
    """`upload_many` over files that are all stored already: the existence checks alone."""
    from cprsdk.storage import open_store, upload_many

    items = blob_items(files)
    start = time.perf_counter()
    stats = upload_many(open_store(f"gs://{bucket}/reg"), items, progress=False)
    seconds = time.perf_counter() - start
    assert stats.uploaded_files == 0 and stats.skipped_files == FILES, stats
    return seconds


def diagnostics(project: Path, files: list[tuple[Path, str]], scratch: Path, index: int) -> dict[str, Any]:
    env = {"CPRSDK_CACHE_DIR": str(scratch / "cache")}
    with fresh_bucket() as bucket:
        wall, lines, _ = stamped(deploy_cmd(project, bucket, f"s{index}", as_json=False), cwd=scratch, env=env)
        first = {"wall": wall, **split(wall, lines)}
        wall, lines, _ = stamped(deploy_cmd(project, bucket, f"s{index}_again", as_json=False), cwd=scratch, env=env)
        again = {"wall": wall, **split(wall, lines)}
        skipped = skipped_upload(files, bucket)
    return {"deploy_split": first, "redeploy_split": again, "skipped_upload_many": skipped}


# ------------------------------------------------------------------ --variants: why the upload step is slower


@dataclass(frozen=True)
class Variant:
    workers: int = 8  # upload_many's default; GcsStore caps it at 4 against an emulator
    uncapped: bool = False  # lift that cap (GcsStore.max_workers = None)
    chunk: int | None = None  # resumable chunk size instead of cprsdk's 8 MiB (a private constant)
    listing: bool = False  # one listing of blobs/sha256/ instead of a stat per file before its upload
    sha256: bool = True  # pass each file's sha256, as deploy does: the bytes sent are hashed and checked


VARIANTS = {
    "as deploy runs it: 4 threads, 8 MiB chunks, stat per file": Variant(),
    "1 thread": Variant(workers=1),
    "8 threads (cap lifted)": Variant(uncapped=True),
    "16 MiB chunks (one PUT per 10 MB file)": Variant(chunk=16 * MiB),
    "without the sha256 check of the bytes sent": Variant(sha256=False),
    "one listing instead of the stats": Variant(listing=True),
    "16 MiB chunks + one listing": Variant(chunk=16 * MiB, listing=True),
}


def upload_variant(files: list[tuple[Path, str]], variant: Variant) -> float:
    """The upload step changed as ``variant`` says, into a fresh bucket: seconds."""
    from cprsdk.storage import _gcs, open_store, upload_many

    items, saved = blob_items(files), _gcs.RESUMABLE_CHUNK
    _gcs.RESUMABLE_CHUNK = variant.chunk or saved
    try:
        with fresh_bucket() as bucket:
            def run() -> None:
                store = open_store(f"gs://{bucket}/reg")
                if variant.uncapped:
                    store.max_workers = None
                if variant.listing:
                    listed_upload(store, items, variant.workers)
                else:
                    todo = items if variant.sha256 else [item[:2] for item in items]
                    upload_many(store, todo, workers=variant.workers, progress=False)
            return timed_call(run)
    finally:
        _gcs.RESUMABLE_CHUNK = saved


def listed_upload(store: Any, items: list[tuple[Path, str, str]], workers: int) -> None:
    """What upload_many would do with one listing: the same create-only, checked uploads, no stats."""
    stored = {info.key: info.size for info in store.list("blobs/sha256/")}
    missing = [(path, key, digest) for path, key, digest in items if stored.get(key) != path.stat().st_size]
    with ThreadPoolExecutor(max_workers=min(workers, store.max_workers or workers)) as pool:
        list(pool.map(lambda item: store.upload_file(item[0], item[1], if_absent=True, sha256=item[2]), missing))


def run_variants(files: list[tuple[Path, str]], rounds: int) -> dict[str, list[float]]:
    runs: dict[str, Callable[[], float]] = {"baseline loop": lambda: baseline(files)}
    runs.update({name: functools.partial(upload_variant, files, v) for name, v in VARIANTS.items()})
    found: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(rounds):
        for name in list(runs) if i % 2 == 0 else list(runs)[::-1]:
            found[name].append(runs[name]())
    return found


def print_variants(found: dict[str, list[float]]) -> None:
    print(f"machine: {machine()}; load average at the end: {load()}")
    print(f"upload step variants, {FILES} x {FILE_BYTES // MB} MB, a fresh emulator each; order alternates per round")
    base = median(found["baseline loop"])
    print(f"\n{'':<58}  median ms  min ms  MB/s  ratio to baseline")
    for name, walls in found.items():
        rate = mbps(FILES * FILE_BYTES, median(walls))
        print(f"{name:<58}  {ms(median(walls)):>9}  {ms(min(walls)):>6}  {rate:>4.0f}  {base / median(walls):>17.2f}")


# ------------------------------------------------------------------ the report


def mbps(nbytes: float, seconds: float) -> float:
    return nbytes / MB / seconds


def summary(rounds: list[dict[str, Any]], diags: list[dict[str, Any]]) -> dict[str, Any]:
    total = FILES * FILE_BYTES
    rate = {
        "deploy": [mbps(r["deploy"]["uploadedBytes"], r["deploy"]["wall"]) for r in rounds],
        "upload_many": [mbps(total, r["upload_many"]) for r in rounds],
        "baseline": [mbps(total, r["baseline"]) for r in rounds],
        "baseline_script": [mbps(total, r["baseline_script"]) for r in rounds],
    }
    walls = {"deploy": [r["deploy"]["wall"] for r in rounds], "upload_many": [r["upload_many"] for r in rounds],
             "baseline": [r["baseline"] for r in rounds], "baseline_script": [r["baseline_script"] for r in rounds],
             "redeploy": [r["redeploy"]["wall"] for r in rounds]}
    splits = {kind: {phase: median([d[kind][phase] for d in diags]) for phase in diags[0][kind]}
              for kind in ("deploy_split", "redeploy_split")}
    return {
        "mb_per_s_median": {k: median(v) for k, v in rate.items()},
        "mb_per_s_max": {k: max(v) for k, v in rate.items()},
        "wall_median": {k: median(v) for k, v in walls.items()},
        "ratio_deploy": median(rate["deploy"]) / median(rate["baseline"]),
        "ratio_upload_many": median(rate["upload_many"]) / median(rate["baseline"]),
        "ratio_deploy_best": max(rate["deploy"]) / max(rate["baseline"]),
        "ratio_upload_many_best": max(rate["upload_many"]) / max(rate["baseline"]),
        "ratio_deploy_paired": median([d / b for d, b in zip(rate["deploy"], rate["baseline"], strict=True)]),
        "ratio_upload_many_paired": median([u / b for u, b in zip(rate["upload_many"], rate["baseline"], strict=True)]),
        "ratio_deploy_vs_script": median(rate["deploy"]) / median(rate["baseline_script"]),
        "redeploy_uploaded_bytes": [r["redeploy"]["uploadedBytes"] for r in rounds],
        "redeploy_reused_files": [r["redeploy"]["reusedFiles"] for r in rounds],
        **splits,
        "skipped_upload_many_median": median([d["skipped_upload_many"] for d in diags]),
    }


def verdict(ratio: float) -> str:
    return "MET" if ratio >= TARGET else "MISSED"


def row(index: int, r: dict[str, Any]) -> str:
    d, a, total = r["deploy"], r["redeploy"], FILES * FILE_BYTES
    return (f"{index:>5}  {r['order']:<14}  | {ms(d['wall']):>9} {mbps(d['uploadedBytes'], d['wall']):>5.1f}"
            f"  {d['uploadedBytes']:>10} | {ms(r['upload_many']):>14} {mbps(total, r['upload_many']):>5.1f}"
            f" | {ms(r['baseline']):>11} {mbps(total, r['baseline']):>5.1f}"
            f" | {ms(r['baseline_script']):>9} {mbps(total, r['baseline_script']):>5.1f} |"
            f" {ms(a['wall']):>12} {a['uploadedBytes']:>11} {a['reusedFiles']:>13}")


def print_report(rounds: list[dict[str, Any]], result: dict[str, Any]) -> None:
    print(f"machine: {machine()}; load average at the end: {load()}")
    command = shown(deploy_cmd(Path("PROJECT"), "BUCKET", "vN", as_json=False)[:-2])  # shown() would cut the URI
    print(f"deploy:   {command} --registry gs://BUCKET/reg --format json  (PROJECT: the trained sample + "
          f"{FILES} x {FILE_BYTES // MB} MB random files in model/)")
    print("upload:   cprsdk.storage.upload_many(open_store('gs://BUCKET/reg'), 20 files)  (in-process)")
    print("baseline: bucket.blob(name).upload_from_filename(path) for the 20 files  (in-process; and as a"
          " python -c child)")
    print("each measurement: a fresh in-memory gcp-storage-emulator child process on 127.0.0.1")
    print("\nround  order           | deploy ms  MB/s  uploaded B | upload_many ms  MB/s | baseline ms  MB/s |"
          " script ms  MB/s | re-deploy ms  uploaded B  reused files")
    for i, r in enumerate(rounds, 1):
        print(row(i, r))
    rate, wall = result["mb_per_s_median"], result["wall_median"]
    print("\n                                  median ms  median MB/s  best MB/s")
    for key, label in (("deploy", "cprsdk deploy (whole command)"), ("upload_many", "cprsdk upload_many (step)"),
                       ("baseline", "upload_from_filename loop"),
                       ("baseline_script", "the loop as a python -c child")):
        print(f"{label:<32}  {ms(wall[key]):>9}  {rate[key]:>11.1f}  {result['mb_per_s_max'][key]:>9.1f}")
    for key, label in (("deploy", "whole deploy / baseline:"), ("upload_many", "upload step / baseline: ")):
        ratio = result[f"ratio_{key}"]
        print(f"{'' if key == 'upload_many' else chr(10)}throughput ratio, {label} {ratio:.2f} (medians), "
              f"{result[f'ratio_{key}_best']:.2f} (best), {result[f'ratio_{key}_paired']:.2f} (median of the rounds' "
              f"own ratios); target >= {TARGET}: {verdict(ratio)}")
    print("(for context) whole deploy / the loop as a python -c child: "
          f"{result['ratio_deploy_vs_script']:.2f} (medians)")
    zero = all(b == 0 for b in result["redeploy_uploaded_bytes"])
    print(f"\nre-deploy: {ms(wall['redeploy'])} ms wall (median); uploadedBytes {result['redeploy_uploaded_bytes']}, "
          f"reusedFiles {result['redeploy_reused_files']}: {'no bytes sent' if zero else 'BYTES SENT'}")
    print("\nsplit (medians of the diagnostic runs, ms; from time-stamped step lines on stderr):")
    print("                 start-up  checks  hashing  upload+publish  wall")
    for kind, label in (("deploy_split", "deploy"), ("redeploy_split", "re-deploy")):
        s = result[kind]
        print(f"{label:<15}  {ms(s['start-up']):>8}  {ms(s['checks']):>6}  {ms(s['hashing']):>7}"
              f"  {ms(s['upload+publish']):>14}  {ms(s['wall']):>4}")
    print(f"upload_many over the {FILES} stored files (all skipped: one existence check each): "
          f"{ms(result['skipped_upload_many_median'])} ms (median)")
    print("start-up: interpreter, imports, settings, the version-exists check; checks: those of `cprsdk package`;"
          "\nupload+publish: existence checks, uploads, model record, manifest write and read-back, exit")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each (default: 3)")
    parser.add_argument("--json", metavar="PATH", help="also write the raw figures to PATH")
    parser.add_argument("--variants", action="store_true",
                        help="instead: time variants of the upload step (threads, chunk size, stat vs listing)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cprsdk-bench-deploy-") as tmp:
        scratch = Path(tmp)
        project, files = make_project(scratch / "zerocenterer-sklearn")
        if args.variants:
            found = run_variants(files, args.rounds)
            print_variants(found)
            if args.json:
                Path(args.json).write_text(json.dumps(found, indent=2) + "\n", encoding="utf-8")
            return
        rounds, diags = [], []
        for i in range(args.rounds):
            rounds.append(one_round(project, files, scratch, i))
            diags.append(diagnostics(project, files, scratch, i))
        result = summary(rounds, diags)
        print_report(rounds, result)
    if args.json:
        Path(args.json).write_text(json.dumps({"rounds": rounds, "diagnostics": diags, **result}, indent=2) + "\n",
                                   encoding="utf-8")


if __name__ == "__main__":
    main()
