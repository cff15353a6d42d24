"""One error tree, in fact: every class in cprsdk.errors derives from CprError, sits in the tree that
errors.py draws (under its real parent), is listed in docs/errors.md with its status, and is
exported from cprsdk unless it is internal (with the reason below)."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest

import cprsdk
from cprsdk import errors

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "errors.md"

# Not exported from cprsdk: each one is caught inside cprsdk, next to where it is raised.
INTERNAL = {
    "Stopped": "pipeline control flow: a worker leaves when the run stops; it never leaves a Pipeline",
    "ItemFailure": "becomes an ItemError in pipe.errors; it never leaves a Pipeline",
    "SetupFailure": "becomes the PipelineError of the run; it never leaves a Pipeline",
    "LoadFailed": "the node marks the version FAILED with its message; it never leaves the node",
    "Overloaded": "the node answers it as a 503 envelope; it never leaves the node",
    "WorkersUnavailable": "the node answers it as a 503 envelope with Retry-After; it never leaves the node",
    "WorkerLost": "a batch job turns it into the error line of the record at fault; it never leaves a job",
}


def _classes() -> dict[str, Any]:
    return {n: v for n, v in vars(errors).items() if inspect.isclass(v) and issubclass(v, BaseException)}


def _tree(text: str) -> list[tuple[int, str]]:
    """(depth, name) for each line of the tree drawn in ``text``; CprError is depth 0."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("CprError "))
    root = lines[start].index("CprError")
    found = [(0, "CprError")]
    for line in lines[start + 1:]:
        match = re.match(r"^[ │]*[├└]── (\w+)", line)
        if match is None:
            break
        found.append(((line.index(match.group(1)) - root) // 4, match.group(1)))
    return found


def _docs_table() -> dict[str, str]:
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \| .+ \|$", DOCS.read_text(encoding="utf-8"), re.MULTILINE)
    return {name: status.strip() for name, status in rows}


def test_every_error_derives_from_cpr_error_and_is_in_errors_all() -> None:
    for name, cls in _classes().items():
        assert issubclass(cls, errors.CprError), name
        assert name in errors.__all__, name


def test_the_docstring_tree_has_every_class_under_its_parent() -> None:
    classes = _classes()
    tree = _tree(errors.__doc__ or "")
    assert sorted(name for _, name in tree) == sorted(classes)
    parents: list[str] = []
    for depth, name in tree:
        parents[depth:] = [name]
        if depth:
            parent = parents[depth - 1]
            assert classes[name].__bases__ == (classes[parent],), f"{name} is drawn under {parent}"


def test_docs_repeat_the_tree() -> None:
    drawn = [line[4:] for line in (errors.__doc__ or "").splitlines() if re.match(r"^    [ │]*([├└]── )?\w", line)]
    block = DOCS.read_text(encoding="utf-8").split("```")[1].strip("\n").splitlines()
    assert block == drawn


def test_docs_list_every_class_with_its_status() -> None:
    table = _docs_table()
    assert sorted(table) == sorted(_classes())
    for name, cell in table.items():
        cls = _classes()[name]
        number = re.match(r"\d{3}", cell)
        if number is None:
            assert cell == "varies", f"{name}: docs/errors.md gives neither a status nor 'varies': {cell!r}"
            continue
        assert int(number.group()) == cls.status_code, f"{name}: docs say {cell!r}"


def test_a_status_given_to_one_error_replaces_the_class_status_for_it_alone() -> None:
    refused = errors.RegistryError("Version 'v1' exists already.", status_code=409)
    assert (refused.status_code, errors.RegistryError.status_code) == (409, 400)
    assert errors.NotFound("gone").status_code == 404
    assert errors.error_body(refused.status_code, refused.message)["error"]["status"] == "ALREADY_EXISTS"


def test_public_errors_are_exported_and_internal_ones_say_why() -> None:
    classes = _classes()
    assert set(INTERNAL) <= set(classes)
    for name, cls in classes.items():
        if name in INTERNAL:
            assert INTERNAL[name] and name not in cprsdk.__all__, name
            assert "*Internal.*" in _docs_row(name), f"docs/errors.md should mark {name} internal"
        else:
            assert name in cprsdk.__all__ and getattr(cprsdk, name) is cls, name


def _docs_row(name: str) -> str:
    return next(line for line in DOCS.read_text(encoding="utf-8").splitlines() if line.startswith(f"| `{name}` |"))


def test_envelope_bytes_are_the_body_as_json() -> None:
    body = errors.error_body(429, "slow down")
    assert body == {"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}}
    assert errors.error_bytes(429, "slow down") == json.dumps(body).encode()


def test_nothing_else_builds_the_envelope() -> None:
    for path in sorted((ROOT / "cprsdk").rglob("*.py")):
        if path.name == "errors.py" and path.parent.name == "cprsdk":
            continue
        text = path.read_text(encoding="utf-8")
        assert '{"error": {' not in text and "status_name(" not in text, f"{path} builds the envelope itself"


@pytest.mark.parametrize(("exc", "text", "message"), [
    (errors.ItemFailure("TimeoutError", "too slow", splittable=False), "TimeoutError: too slow", "too slow"),
    (errors.SetupFailure("load", "OSError", "disk gone"), "stage 'load': OSError: disk gone", "disk gone"),
    (errors.Stopped(), "The pipeline run is stopping.", "The pipeline run is stopping."),
])
def test_pipeline_internals_keep_their_text_and_attributes(exc: errors.CprError, text: str, message: str) -> None:
    assert (str(exc), exc.message, exc.status_code) == (text, message, 500)
