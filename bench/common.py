"""Helpers shared by the benchmark scripts: a trained copy of the sample, timed subprocesses."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "zerocenterer-sklearn"
# What training writes, and what a checkout may hold from earlier runs: never copied.
_NOT_COPIED = ("dist", "build", "model", "sample.jsonl", "__pycache__", "*.egg-info", "*.pyc")


@dataclass(frozen=True)
class Run:
    wall: float
    stdout: str
    stderr: str


def cprsdk_command() -> list[str]:
    """The installed ``cprsdk`` script beside this interpreter, else ``python -m cprsdk``."""
    script = Path(sys.executable).with_name("cprsdk")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "cprsdk"]


def timed(cmd: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None) -> Run:
    """Run ``cmd`` to completion; its wall time by ``time.perf_counter``. Fails loudly on exit != 0."""
    full_env = {**os.environ, **(env or {})}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return Run(wall, proc.stdout, proc.stderr)


def trained_sample(dest: Path) -> Path:
    """Copy the sklearn sample's sources to ``dest`` and run its train.py there."""
    shutil.copytree(SAMPLE, dest, ignore=shutil.ignore_patterns(*_NOT_COPIED))
    timed([sys.executable, "train.py"], cwd=dest)
    return dest


def free_port() -> int:
    """A loopback port nothing listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def copy_tree(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist"))
    return dest


def shown(cmd: Sequence[str]) -> str:
    """A command for printing: the interpreter and scripts by their base names, no machine paths."""
    return " ".join("python" if part == sys.executable else Path(part).name if os.sep in part else part
                    for part in cmd)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{platform.system()} {platform.machine()}, {cores} cores available, Python {platform.python_version()}"


def load() -> str:
    """The 1-minute load average: other work on the machine skews every figure."""
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"
