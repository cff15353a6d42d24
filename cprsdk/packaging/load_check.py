"""The load check of ``cprsdk package`` and ``cprsdk deploy``: the version loads before anything is uploaded.

In a clean child interpreter with only the built packages installed (as a node installs them),
the version is loaded from the real model directory exactly as a node worker loads it (through
``load_adapter``: ``from_path``, ``load``, ``model_fn``, ``init`` or a framework's model file).
The check reports the load time and the child's peak memory. With smoke instances
(``--json-instances F`` or ``smoke_instances``), one prediction runs and its answer must be JSON.

``--skip-load-check`` (``skip_load_check = true``) is for models too big to load on the build
machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cprsdk.config import Settings
from cprsdk.errors import PredictorLoadError
from cprsdk.packaging.limits import format_mb
from cprsdk.runtime.sandbox import run_job

__all__ = ["load_check"]


def _smoke_body(settings: Settings) -> dict[str, Any] | None:
    if settings.smoke_instances is None:
        return None
    from cprsdk.runtime.local import read_request

    return read_request(json_instances=str(settings.smoke_instances))


def _failure(answer: dict[str, Any], settings: Settings, shown: str) -> PredictorLoadError:
    if answer.get("stage") == "smoke":
        return PredictorLoadError(
            f"The smoke prediction on {settings.smoke_instances} failed: {answer['message']}",
            hint="predict must return one JSON-serializable output per instance (lists, numbers, strings, "
                 "dicts, NumPy arrays); fix predict, or drop --json-instances.")
    message = answer.get("message") or answer["body"]["error"]["message"]
    tail = answer.get("log_tail") or ""
    return PredictorLoadError(
        f"The version does not load from {shown} (nothing was uploaded): {message}" + (f"\n{tail}" if tail else ""),
        hint="Fix the loading code or the model directory; `cprsdk local predict -v` shows the traceback. "
             "For a model too big to load here, pass --skip-load-check (or skip_load_check = true).")


def load_check(settings: Settings, *, target: str, sites: list[Path], model_dir: Path | None,
               work: Path) -> list[tuple[str, str]]:
    """(check name, detail) pairs: the load, then the smoke prediction; raises PredictorLoadError."""
    if settings.skip_load_check:
        return [("load", f"skipped ({settings.describe('skip_load_check')})")]
    if model_dir is None:
        return [("load", "no model directory; skipped")]
    job = {"kind": "load", "sites": [str(s) for s in sites], "prediction_class": target,
           "model_dir": str(model_dir), "body": _smoke_body(settings)}
    answer = run_job(job, cwd=work)
    if answer.get("status") != 200:
        raise _failure(answer, settings, str(model_dir))
    peak = format_mb(int(answer["peak_rss_kb"]) * 1024)
    found = [("load", f"loaded in {answer['seconds']:.2f} s; peak memory of the loading process {peak}")]
    if "smoke" in answer:
        count = len(answer["smoke"].get("predictions", [])) if isinstance(answer["smoke"], dict) else 0
        found.append(("smoke prediction", f"{count} predictions from {Path(str(settings.smoke_instances)).name}, "
                                          f"JSON, in {answer['smoke_seconds']:.2f} s"))
    return found
