"""`cprsdk image build` of the sklearn sample: image size, cold build, code-only rebuild, start-up.

What it measures, on a trained copy of the sample, on the base image .ci/docker-setup imports:

- context: `cprsdk image build ... --context-only DIR` (the wheelhouse from cprsdk's cache, the
  sdist, the Dockerfile), wall time;
- cold build: `docker build --no-cache --network none` of that context with the classic builder
  (`DOCKER_BUILDKIT=0`, as `cprsdk image build` runs it), wall time; the image's size;
- code-only rebuild: a copy of the sample with one harmless constant added to predictor.py, built
  with `cprsdk image build --tag` (context and build, the cache from the cold build), wall time,
  and how many of its layers are the cold image's;
- start to first prediction: from `docker run -d --network host` (or the start of a `cprsdk serve
  --model-dir --package --prediction-class` subprocess on the host, the same version) to the first
  200 answer of POST /v1/models/zc:predict, polled every 50 ms; alternating, `--rounds` of each.

Every container and process it starts is stopped by its name or process group; the images are
removed at the end.

    .venv/bin/python bench/bench_image.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path

from common import REPO, cprsdk_command, free_port, load, machine, median, timed, trained_sample

BASE = "cprsdk-base:bookworm"
SKLEARN = f"scikit-learn=={metadata.version('scikit-learn')}"
NO_BUILDKIT = {"DOCKER_BUILDKIT": "0"}


def _build_args(sample: Path) -> list[str]:
    return [*cprsdk_command(), "image", "build", "--model", "zc", "--model-dir", str(sample / "model"),
            "--package", str(sample), "--prediction-class", "predictor.MyPredictor", "--requirement", SKLEARN,
            "--base", BASE]


def _inspect(tag: str, fmt: str) -> str:
    return subprocess.run(["docker", "image", "inspect", "--format", fmt, tag], capture_output=True, text=True,
                          check=True).stdout.strip()


def _predicts(port: int, body: bytes) -> bool:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/zc:predict", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return bool(answer.status == 200)
    except (OSError, urllib.error.HTTPError):
        return False


def _until_predicts(port: int, body: bytes, start: float, timeout: float = 180) -> float:
    while not _predicts(port, body):
        if time.perf_counter() - start > timeout:
            raise SystemExit(f"no prediction on port {port} after {timeout:g} s")
        time.sleep(0.05)
    return time.perf_counter() - start


def _container_start(tag: str, body: bytes) -> float:
    port = free_port()
    name = f"cprsdk-bench-{port}"
    start = time.perf_counter()
    subprocess.run(["docker", "run", "-d", "--name", name, "--network", "host", "-e", "CPRSDK_HOST=127.0.0.1",
                    "-e", f"CPRSDK_PORT={port}", tag], check=True, capture_output=True)
    try:
        return _until_predicts(port, body, start)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def _host_start(sample: Path, body: bytes) -> float:
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen([*cprsdk_command(), "serve", "--port", str(port), "--model", "zc", "--model-dir",
                             str(sample / "model"), "--package", str(sample), "--prediction-class",
                             "predictor.MyPredictor"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        return _until_predicts(port, body, start)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _builds(sample: Path, work: Path, tags: tuple[str, str]) -> dict[str, float]:
    context = work / "ctx"
    figures = {"context": timed([*_build_args(sample), "--context-only", str(context)], cwd=REPO).wall}
    figures["cold build"] = timed(["docker", "build", "--no-cache", "--network", "none", "-t", tags[0],
                                   str(context)], cwd=REPO, env=NO_BUILDKIT).wall
    changed = work / "changed"
    subprocess.run(["cp", "-r", str(sample), str(changed)], check=True)
    (changed / "predictor.py").write_text((changed / "predictor.py").read_text() + '\nBUILD_NOTE = "changed"\n')
    figures["code-only rebuild"] = timed([*_build_args(changed), "--tag", tags[1]], cwd=REPO).wall
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="start-up measurements of each kind")
    rounds = parser.parse_args().rounds
    print(f"machine: {machine()}; load {load()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    stamp = int(time.time())
    tags = (f"cprsdk-bench-zc:{stamp}", f"cprsdk-bench-zc:{stamp}-code")
    with tempfile.TemporaryDirectory(prefix="bench-image-") as tmp:
        sample = trained_sample(Path(tmp) / "zerocenterer-sklearn")
        instances = [json.loads(line) for line in (sample / "sample.jsonl").read_text().splitlines()][:1]
        body = json.dumps({"instances": instances}).encode()
        try:
            figures = _builds(sample, Path(tmp), tags)
            size = int(_inspect(tags[0], "{{.Size}}"))
            cold, code = (json.loads(_inspect(tag, "{{json .RootFS.Layers}}")) for tag in tags)
            shared = next((i for i, (a, b) in enumerate(zip(cold, code, strict=False)) if a != b), len(code))
            container, host = [], []
            for _ in range(rounds):
                container.append(_container_start(tags[0], body))
                host.append(_host_start(sample, body))
        finally:
            subprocess.run(["docker", "rmi", "-f", *tags], capture_output=True)
    print(f"image: {size / 1e6:.0f} MB, {len(cold)} layers; the code-only rebuild shares the first {shared}")
    print("\n| figure | seconds |\n|---|---:|")
    for what, wall in figures.items():
        print(f"| {what} | {wall:.1f} |")
    print(f"| start to first prediction, container (median of {rounds}) | {median(container):.2f} |")
    print(f"| start to first prediction, `cprsdk serve` on the host (median of {rounds}) | {median(host):.2f} |")
    print(f"\ncontainer runs: {', '.join(f'{s:.2f}' for s in container)}; host: {', '.join(f'{s:.2f}' for s in host)}")
    print(f"python {sys.version.split()[0]}, {SKLEARN}")


if __name__ == "__main__":
    main()
