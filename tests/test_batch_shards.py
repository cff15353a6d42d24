"""The JSON-lines scan that cuts a job into shards, against a line-by-line reference.

The scan reads blocks of whole lines and finds newlines in NumPy; here the block is made a few
bytes long so that lines cross block boundaries, and files hold blank lines, lines of spaces,
CRLF endings and a last line without a newline.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cprsdk.batch import shards
from cprsdk.batch.inputs import list_objects
from cprsdk.batch.shards import plan, read_lines, read_shard

_LINE = st.one_of(
    st.integers(-10**6, 10**6).map(lambda n: str(n).encode()),
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), max_size=4).map(lambda v: repr(v).encode()),
    st.text("abcé \t", max_size=8).map(lambda t: b'{"s": "' + t.encode() + b'"}'),
    st.sampled_from([b"", b" ", b"\t \r", b"\x0b", b"  \x0c "]),  # blank to bytes.strip()
)


def _reference(data: bytes) -> list[tuple[int, bytes]]:
    """(line number, line) of every line bytes.strip() leaves non-empty, the way a reader would count."""
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    return [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(_LINE, max_size=40), crlf=st.booleans(), last_newline=st.booleans(),
       block=st.integers(1, 64), shard_size=st.integers(1, 7))
def test_shards_hold_every_record_once_in_order_with_its_line_number(
        tmp_path_factory: pytest.TempPathFactory, lines: list[bytes], crlf: bool, last_newline: bool,
        block: int, shard_size: int) -> None:
    folder = tmp_path_factory.mktemp("scan")
    data = (b"\r\n" if crlf else b"\n").join(lines) + (b"\n" if last_newline and lines else b"")
    (folder / "in.jsonl").write_bytes(data)
    expected = _reference(data)
    old, shards._BLOCK = shards._BLOCK, block
    try:
        planned = plan(list_objects([str(folder / "in.jsonl")]), "jsonl", shard_size, folder)
    finally:
        shards._BLOCK = old
    assert planned.total == len(expected) and not planned.unreadable
    assert all(shards.count(s) <= shard_size for s in planned.shards)
    assert all(shards.count(s) == shard_size for s in planned.shards[:-1])
    uri = (folder / "in.jsonl").as_uri()
    refs, got = [], []
    for shard in planned.shards:
        more_refs, more_lines = read_lines(shard)
        assert [r["ref"] for r in read_shard(shard)] == more_refs
        refs += more_refs
        got += more_lines
    assert refs == [f"{uri}:{n}" for n, _ in expected]
    assert [line.rstrip(b"\r") for line in got] == [line.rstrip(b"\r") for _, line in expected]


def test_shards_continue_across_files_and_fill_the_last_shard_of_the_one_before(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(b"1\n2\n3\n")
    (tmp_path / "b.jsonl").write_bytes(b"\n4\n5\n6\n7")
    planned = plan(list_objects([str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")]), "jsonl", 2, tmp_path)
    assert [read_lines(s) for s in planned.shards] == [
        ([f"{(tmp_path / 'a.jsonl').as_uri()}:1", f"{(tmp_path / 'a.jsonl').as_uri()}:2"], [b"1", b"2"]),
        ([f"{(tmp_path / 'a.jsonl').as_uri()}:3", f"{(tmp_path / 'b.jsonl').as_uri()}:2"], [b"3", b"4"]),
        ([f"{(tmp_path / 'b.jsonl').as_uri()}:3", f"{(tmp_path / 'b.jsonl').as_uri()}:4"], [b"5", b"6"]),
        ([f"{(tmp_path / 'b.jsonl').as_uri()}:5"], [b"7"])]


def test_a_file_that_is_not_utf8_past_its_first_block_is_unreadable_as_a_whole(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "good.jsonl").write_bytes(b"[1]\n" * 50)
    (tmp_path / "bad.jsonl").write_bytes(b"[1]\n" * 50 + b'"caf\xe9"\n' + b"[2]\n")
    monkeypatch.setattr(shards, "_BLOCK", 16)
    planned = plan(list_objects([str(tmp_path / "bad.jsonl"), str(tmp_path / "good.jsonl")]), "jsonl", 1000, tmp_path)
    assert planned.total == 50 and [u["input"] for u in planned.unreadable] == [(tmp_path / "bad.jsonl").as_uri()]
    assert planned.unreadable[0]["errorType"] == "UnicodeDecodeError"
