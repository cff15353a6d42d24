"""The progress of `cprsdk batch predict`: a tqdm bar on a terminal, a plain line otherwise, and
nothing under `--format json`. Each case is the real command in a subprocess, its stderr a pipe or
a pseudo-terminal."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from tqdm import tqdm  # type: ignore[import-untyped]

ROWS = 3000


def _argv(sample: Path, tmp_path: Path, *extra: str) -> list[str]:
    data = tmp_path / "rows.jsonl"
    if not data.exists():
        data.write_text("".join(json.dumps([5.1, 3.5, 1.4 + i % 3, 0.2]) + "\n" for i in range(ROWS)))
    return [sys.executable, "-m", "cprsdk", "batch", "predict", "--model-dir", str(sample / "model"),
            "--package", str(sample), "--prediction-class", "predictor.MyPredictor", "--input", str(data),
            "--output", str(tmp_path / f"out-{len(list(tmp_path.iterdir()))}"), "--shard-size", "500", *extra]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "COLUMNS": "120"}


def test_without_a_terminal_progress_is_a_plain_line_with_the_rate(trained_sample: Path, tmp_path: Path) -> None:
    proc = subprocess.run(_argv(trained_sample, tmp_path), capture_output=True, text=True, env=_env(tmp_path),
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["succeeded"] == ROWS
    lines = [line for line in proc.stderr.splitlines() if " rows" in line]
    assert lines[0].startswith(f"0 of {ROWS:,} rows (0%)")
    assert re.fullmatch(rf"{ROWS:,} of {ROWS:,} rows \(100%\), [\d,]+ rows/s", lines[-1]), lines
    assert "\r" not in proc.stderr and "\x1b" not in proc.stderr  # no bar drawing into a log


def test_on_a_terminal_progress_is_a_bar_with_the_rate(trained_sample: Path, tmp_path: Path) -> None:
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal has a size
    try:
        proc = subprocess.Popen(_argv(trained_sample, tmp_path), stdout=subprocess.PIPE, stderr=follower,
                                env=_env(tmp_path))
        os.close(follower)
        drawn = b""
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the terminal closed with the process
                    break
                if not chunk:
                    break
                drawn += chunk
            elif proc.poll() is not None:
                break
        out, _ = proc.communicate(timeout=60)
    finally:
        os.close(leader)
    assert proc.returncode == 0 and json.loads(out)["succeeded"] == ROWS
    text = drawn.decode(errors="replace")
    assert "\r" in text  # redrawn in place
    final = text.replace("\r\n", "\n").split("\r")[-1]
    count = re.escape(tqdm.format_sizeof(ROWS))  # 3.00k
    assert re.search(rf"100%\|.*\| {count}/{count} \[.*rows/s\]", final), final


def test_under_format_json_there_is_no_progress(trained_sample: Path, tmp_path: Path) -> None:
    proc = subprocess.run(_argv(trained_sample, tmp_path, "--format", "json"), capture_output=True, text=True,
                          env=_env(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["succeeded"] == ROWS
    assert " rows" not in proc.stderr and "rows/s" not in proc.stderr, proc.stderr


def test_a_terminal_that_reports_no_width_gets_plain_lines() -> None:
    from cprsdk.cli._progress import Progress

    leader, follower = pty.openpty()  # a pseudo-terminal with no window size, as some CI runners give
    try:
        with os.fdopen(follower, "w", closefd=False) as stream:
            progress = Progress("rows", stream=stream)
            progress(0, 10)
            progress(10, 10)
            progress.close()
        os.set_blocking(leader, False)
        text = os.read(leader, 65536).decode()
    finally:
        os.close(follower)
        os.close(leader)
    assert re.search(r"^10 of 10 rows \(100%\), [\d,]+ rows/s\r?$", text, re.M), text
    assert "|" not in text
