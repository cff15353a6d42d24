"""Streaming: the job's own process holds shard descriptors, not records; its memory does not grow with the input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

BEHAVIOURS = Path(__file__).resolve().parent / "projects" / "behaviours"


def _peak_rss_mb(argv: list[str], cwd: Path) -> tuple[float, int]:
    """Run ``cprsdk`` as a process of its own; its peak RSS (VmHWM, read from /proc while it runs) and exit code."""
    env = {**os.environ, "XDG_DATA_HOME": str(cwd / "data")}  # the jobs index of this test only
    proc = subprocess.Popen([sys.executable, "-m", "cprsdk", *argv], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    peak = 0
    try:
        while proc.poll() is None:
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
            except (FileNotFoundError, ProcessLookupError):
                break
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
            time.sleep(0.02)
        code = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return peak / 1024, code


def _job(data: Path, out: Path) -> list[str]:
    return ["batch", "predict", "--model-dir", str(BEHAVIOURS / "model"), "--package", str(BEHAVIOURS),
            "--prediction-class", "sizes.Sizes", "--input", str(data), "--output", str(out), "--key-field", "id",
            "--shard-size", "200", "--batch-size", "50"]


def test_the_parent_memory_does_not_grow_with_the_input(tmp_path: Path) -> None:
    small, large = tmp_path / "small.jsonl", tmp_path / "large.jsonl"
    blob = "x" * 10_000
    small.write_text("".join(json.dumps({"id": i, "blob": blob}) + "\n" for i in range(20)))
    with open(large, "w") as fh:
        for i in range(12_000):
            fh.write(json.dumps({"id": i, "blob": blob}) + "\n")
    input_mb = large.stat().st_size / 1e6
    assert input_mb > 110
    base, code = _peak_rss_mb(_job(small, tmp_path / "small-out"), tmp_path)
    assert code == 0
    peak, code = _peak_rss_mb(_job(large, tmp_path / "large-out"), tmp_path)
    assert code == 0
    summary = json.loads((tmp_path / "large-out" / "summary.json").read_text())
    assert summary["succeeded"] == 12_000
    # Holding the records would add about the input's size (120 MB); the descriptors add next to nothing.
    assert peak - base < 0.15 * input_mb, (base, peak, input_mb)
