"""Batch formats: JSON lines and CSV gzipped or not, Parquet in and out, Vertex AI's instanceConfig."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]
import pytest

from cprsdk.cli import main

BEHAVIOURS = Path(__file__).resolve().parent / "projects" / "behaviours"
ECHO = ["--model-dir", str(BEHAVIOURS / "model"), "--package", str(BEHAVIOURS), "--prediction-class", "stuck.Stuck"]
ROWS = [{"id": "a", "sl": 5.1, "sw": 3.5, "pl": 1.4, "pw": 0.2, "note": "first"},
        {"id": "b", "sl": 6.7, "sw": 3.0, "pl": 5.2, "pw": 2.3, "note": "second"}]


@pytest.fixture(autouse=True)
def _jobs_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def _run(capsys: pytest.CaptureFixture[str], data: Path, out: Path, *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main(["batch", "predict", *ECHO, "--input", str(data), "--output", str(out), *argv])
    stdout, err = capsys.readouterr()
    return code, json.loads(stdout) if stdout.strip() else {}, err


def _lines(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return [json.loads(line) for line in data.splitlines()]


def test_gzipped_json_lines_by_suffix_and_gzipped_csv_by_magic(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    jsonl = tmp_path / "rows.jsonl.gz"
    jsonl.write_bytes(gzip.compress(b"[1, 2]\n{broken\n[3, 4]\n"))
    code, summary, err = _run(capsys, jsonl, tmp_path / "j", "--output-compression", "gzip")
    assert code == 0, err
    assert (summary["succeeded"], summary["failed"]) == (2, 1)
    assert _lines(tmp_path / "j" / "predictions" / "part-00000.jsonl.gz") == [
        {"input": f"{jsonl.as_uri()}:1", "instance": [1, 2], "prediction": [1, 2]},
        {"input": f"{jsonl.as_uri()}:3", "instance": [3, 4], "prediction": [3, 4]}]
    assert _lines(tmp_path / "j" / "errors" / "part-00000.jsonl.gz")[0]["input"] == f"{jsonl.as_uri()}:2"
    rows = tmp_path / "rows.csv"  # gzip bytes with no .gz in the name
    rows.write_bytes(gzip.compress(b"id,x,y\nk1,1,2.5\nk2,3,4\n"))
    code, summary, err = _run(capsys, rows, tmp_path / "c", "--data-format", "csv", "--key-field", "id")
    assert code == 0 and summary["succeeded"] == 2, err
    assert _lines(tmp_path / "c" / "predictions" / "part-00000.jsonl") == [
        {"input": f"{rows.as_uri()}:2", "key": "k1", "prediction": [1, 2.5]},
        {"input": f"{rows.as_uri()}:3", "key": "k2", "prediction": [3, 4]}]


def test_parquet_in_and_out_keeps_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), data)
    out = tmp_path / "out"
    code, summary, err = _run(capsys, data, out, "--data-format", "parquet", "--key-field", "id",
                              "--excluded-fields", "note", "--output-format", "parquet")
    assert code == 0 and summary["succeeded"] == 2, err
    table = pq.read_table(out / "predictions" / "part-00000.parquet")
    assert table.column_names == ["input", "key", "prediction"]
    assert table.to_pylist() == [
        {"input": f"{data.as_uri()}:1", "key": '"a"', "prediction": "[5.1, 3.5, 1.4, 0.2]"},
        {"input": f"{data.as_uri()}:2", "key": '"b"', "prediction": "[6.7, 3.0, 5.2, 2.3]"}]
    code, _, err = _run(capsys, data, tmp_path / "objects", "--data-format", "parquet", "--instance-type", "object",
                        "--included-fields", "pw,sl")
    assert code == 0, err
    lines = _lines(tmp_path / "objects" / "predictions" / "part-00000.jsonl")
    assert lines[0]["prediction"] == {"pw": 0.2, "sl": 5.1}
    assert lines[0]["instance"] == ROWS[0]  # without a key field, the whole record


def test_instance_config_on_json_objects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS) + "[1, 2]\n")
    code, summary, err = _run(capsys, data, tmp_path / "arrays", "--instance-type", "array", "--key-field", "id",
                              "--included-fields", "pw,pl,sw,sl")
    assert code == 0 and (summary["succeeded"], summary["failed"]) == (2, 1), err
    assert _lines(tmp_path / "arrays" / "predictions" / "part-00000.jsonl") == [
        {"input": f"{data.as_uri()}:1", "key": "a", "prediction": [0.2, 1.4, 3.5, 5.1]},
        {"input": f"{data.as_uri()}:2", "key": "b", "prediction": [2.3, 5.2, 3.0, 6.7]}]
    assert "the line is a JSON array, and --key-field needs a JSON object on each line" in \
        (tmp_path / "arrays" / "errors.csv").read_text()
    code, _, err = _run(capsys, data, tmp_path / "excluded", "--excluded-fields", "note,id")
    assert code == 0, err
    lines = _lines(tmp_path / "excluded" / "predictions" / "part-00000.jsonl")
    assert lines[0]["prediction"] == {"sl": 5.1, "sw": 3.5, "pl": 1.4, "pw": 0.2}
    assert lines[0]["instance"] == ROWS[0]  # excluded fields stay in the output
    assert len(lines) == 2  # an array line has no fields to leave out: it is an error line
    assert "--excluded-fields needs a JSON object on each line" in (tmp_path / "excluded" / "errors.csv").read_text()
    code, _, err = _run(capsys, data, tmp_path / "unordered", "--instance-type", "array")
    assert code == 0
    assert "--instance-type array needs --included-fields to give the order" in \
        (tmp_path / "unordered" / "errors.csv").read_text()


@pytest.mark.parametrize(("argv", "says"), [
    (["--included-fields", "a", "--excluded-fields", "b"], "--included-fields and --excluded-fields were both given"),
    (["--data-format", "csv", "--instance-type", "object"], "--instance-type object does not apply to CSV input"),
    (["--data-format", "files", "--key-field", "id"], "do not apply to --data-format files"),
])
def test_settings_that_cannot_apply_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                argv: list[str], says: str) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text("{}\n")
    code, _, err = _run(capsys, data, tmp_path / "out", *argv)
    assert code == 1 and says in err


def test_a_changed_output_format_is_refused_on_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text("[1]\n")
    assert _run(capsys, data, tmp_path / "out")[0] == 0
    code, _, err = _run(capsys, data, tmp_path / "out", "--output-format", "parquet")
    assert code == 1 and "--output-format was None, now 'parquet'" in err


def test_a_broken_gzip_or_parquet_input_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.parquet").write_bytes(b"not parquet at all")
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(ROWS), buffer)
    (tmp_path / "in" / "good.parquet").write_bytes(buffer.getvalue())
    code, summary, err = _run(capsys, tmp_path / "in", tmp_path / "out", "--data-format", "parquet")
    assert code == 0 and (summary["succeeded"], summary["failed"]) == (2, 1), err
    assert "bad.parquet," in (tmp_path / "out" / "errors.csv").read_text()


def test_parquet_and_gzip_outputs_of_a_bisected_shard_hold_every_line(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A record that kills its worker: the halves of its shard are joined into one valid file."""
    data = tmp_path / "rows.jsonl"
    data.write_text("".join('"exit"\n' if i == 5 else '"ok"\n' for i in range(1, 9)))
    crashes = ["--prediction-class", "crashes.Crashes", "--shard-size", "8", "--batch-size", "2"]
    for fmt, name in (("parquet", "part-00000.parquet"), ("jsonl", "part-00000.jsonl.gz")):
        out = tmp_path / fmt
        code = main(["batch", "predict", *ECHO[:4], *crashes, "--input", str(data), "--output", str(out),
                     "--output-format", fmt, "--output-compression", "gzip"])
        assert code == 0, capsys.readouterr().err
        path = out / "predictions" / name
        refs = ([row["input"] for row in pq.read_table(path).to_pylist()] if fmt == "parquet"
                else [line["input"] for line in _lines(path)])
        assert refs == [f"{data.as_uri()}:{i}" for i in range(1, 9) if i != 5]
        assert [e["errorType"] for e in _lines(out / "errors" / "part-00000.jsonl.gz")] == ["WorkerExited"]
