"""The fault and soak harness (bench/soak.py) for 60 seconds: a real node under mixed traffic at
concurrency 64 while its workers are SIGKILLed, requests run past their timeout, slow clients
trickle headers and versions are deployed, deleted and made default. The run must give no wrong
answer, no 5xx but for requests in flight on a killed worker or past their timeout, no request
left unanswered, and no growth of the node's descriptors, threads, processes or RSS past the
harness's bounds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parent.parent / "bench" / "soak.py"


@pytest.mark.timeout(600)
def test_a_minute_of_faults_and_mixed_traffic(tmp_path: Path) -> None:
    report_path = tmp_path / "soak.json"
    proc = subprocess.run([sys.executable, str(SOAK), "--duration", "60", "--json", str(report_path)],
                          capture_output=True, text=True, timeout=540)
    assert report_path.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report["violations"] == [] and report["passed"], json.dumps(report, indent=2)[:6000]
    assert proc.returncode == 0
    counts, faults = report["counts"], report["faults"]
    assert counts["valid: right"] > 1000 and counts.get("valid: wrong", 0) == 0
    assert sum(v for k, v in counts.items() if k.startswith("bad: 4")) > 100
    assert faults["workers killed"] >= 5 and faults["timeouts"] >= 2
    assert counts["slow client: closed by the node"] >= 1
    assert faults["deploys"] >= 2 and faults["deletes"] >= 1 and faults["defaults set"] >= 2
    print(f"\nsoak 60 s: {report['requests']} requests, faults {faults}")
