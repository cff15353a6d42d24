"""Shards as descriptors: the inputs are scanned once, streaming, for where each shard begins, and a
shard's records are read only when it is scored (in the worker process, with the local engine).

A shard is a list of segments, each ``count`` records of one object from a byte offset (JSON lines,
CSV) or a row index (Parquet). The parent keeps only these descriptors, never the records, so its
memory does not grow with the input. Objects are read from local files: a local object as it is, a
remote one downloaded (streamed to disk) once into the job's staging folder, a gzip-compressed one
decompressed there.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cprsdk.batch.inputs import InputObject, content_type, plain
from cprsdk.errors import CprError

__all__ = ["Plan", "count", "plan", "read_lines", "read_shard"]

_GZIP_MAGIC = b"\x1f\x8b"
_BLOCK = 1 << 22  # bytes of JSON lines scanned at a time
_BLANK_LINE = re.compile(rb"\n[ \t\r\x0b\x0c]*\n")  # a line bytes.strip() leaves empty, after a newline
_Segment = dict[str, Any]


@dataclass
class Plan:
    """The job's shards (as segments), its record count, and the objects that could not be read."""

    shards: list[list[_Segment]] = field(default_factory=lambda: [[]])
    total: int = 0
    unreadable: list[dict[str, Any]] = field(default_factory=list)


def count(shard: Sequence[_Segment]) -> int:
    return sum(s["count"] for s in shard)


def plan(objects: Sequence[InputObject], data_format: str, shard_size: int, staging: Path) -> Plan:
    """Scan every object once and cut its records into shards of ``shard_size``, in order."""
    result = Plan()
    for number, obj in enumerate(objects):
        try:
            path = _local_file(obj, data_format, staging / f"{number:06d}")
            segments = _segments(obj.url, str(path), data_format, shard_size - count(result.shards[-1]), shard_size)
        except (UnicodeDecodeError, CprError, OSError, EOFError, ValueError) as exc:  # ValueError: bad Parquet
            result.unreadable.append({"input": obj.url, "errorType": type(exc).__name__, "message": str(exc)})
            continue
        for segment in segments:
            if count(result.shards[-1]) + segment["count"] > shard_size:
                result.shards.append([])
            result.shards[-1].append(segment)
            result.total += segment["count"]
    return Plan([s for s in result.shards if s], result.total, result.unreadable)


def _local_file(obj: InputObject, data_format: str, dest: Path) -> Path:
    """A local file with the object's bytes (gunzipped for JSON lines and CSV)."""
    root = getattr(obj.store, "root", None)
    path = Path(root, *obj.info.key.split("/")) if isinstance(root, Path) else None
    if path is None or not path.is_file():
        path = dest.with_suffix(".download")
        obj.store.download_file(obj.info.key, path)
    if data_format in ("jsonl", "csv") and _gzipped(obj.info.key, path):
        with gzip.open(path, "rb") as source, open(dest, "wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
        return dest
    return path


def _gzipped(key: str, path: Path) -> bool:
    if key.endswith(".gz"):
        return True
    with open(path, "rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def _segments(uri: str, path: str, data_format: str, room: int, shard_size: int) -> list[_Segment]:
    """The object's records as segments: the first of at most ``room`` records, the others of ``shard_size``.

    A JSON-lines segment also holds ``end``, the offset just past its last record, so that a worker
    reads its bytes in one call.
    """
    segments: list[_Segment] = []
    header = _header(path) if data_format == "csv" else None
    limit = room if room > 0 else shard_size
    for starts, numbers, ends in _runs(path, data_format):
        i = 0
        while i < len(starts):
            if not segments or segments[-1]["count"] == limit:
                if segments:
                    limit = shard_size
                segments.append({"uri": uri, "path": path, "format": data_format, "start": int(starts[i]),
                                 "number": int(numbers[i]), "count": 0, "header": header})
            take = min(limit - segments[-1]["count"], len(starts) - i)
            segments[-1]["count"] += take
            if ends is not None:
                segments[-1]["end"] = int(ends[i + take - 1])
            i += take
    return segments


# (where, line or row number, end or None) of consecutive records: int sequences (NumPy arrays for JSON lines)
_Run = tuple[Any, Any, Any]


def _runs(path: str, data_format: str) -> Iterator[_Run]:
    """The records of a local file, as runs of consecutive ones."""
    if data_format == "jsonl":
        yield from _jsonl_runs(path)
        return
    points = _points(path, data_format)
    while run := list(itertools.islice(points, 1 << 16)):
        yield [start for start, _ in run], [number for _, number in run], None


def _jsonl_runs(path: str) -> Iterator[_Run]:
    """The non-blank lines of a JSON-lines file, a block of whole lines at a time: newlines are found in
    NumPy, and only a block that holds a blank line is looked at line by line."""
    import numpy as np

    with open(path, "rb") as fh:
        base, line_number, carry = 0, 1, b""
        while True:
            data = fh.read(_BLOCK)
            block = carry + data
            cut = len(block) if not data else block.rfind(b"\n") + 1
            if not cut:  # no whole line yet (a line longer than a block), or nothing left
                if not data:
                    return
                carry = block
                continue
            chunk, carry = block[:cut], block[cut:]
            if not chunk.isascii():
                chunk.decode("utf-8")  # raises: an object that is not UTF-8 is unreadable as a whole
            ends = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10) + 1
            if not len(ends) or ends[-1] != len(chunk):
                ends = np.append(ends, len(chunk))  # the last line, without a newline
            starts = np.concatenate(([0], ends[:-1]))
            numbers = np.arange(line_number, line_number + len(ends))
            line_number += len(ends)
            if (not chunk[:int(ends[0])].strip() or _BLANK_LINE.search(chunk)
                    or not chunk[int(starts[-1]):].strip()):
                keep = np.array([bool(chunk[a:b].strip()) for a, b in zip(starts.tolist(), ends.tolist(), strict=True)])
                starts, numbers, ends = starts[keep], numbers[keep], ends[keep]
            yield starts + base, numbers, ends + base
            base += cut
            if not data:
                return


def _points(path: str, data_format: str) -> Iterator[tuple[int, int]]:
    """(where, line or row number) of each record of a local file (not JSON lines: see _jsonl_runs)."""
    if data_format == "files":
        yield 0, 0
    elif data_format == "parquet":
        from cprsdk.batch.outputs import parquet_module

        rows = parquet_module().ParquetFile(path).metadata.num_rows
        yield from ((row, row + 1) for row in range(rows))
    else:
        yield from _csv_points(path)


class _Lines:
    """A binary file's lines, decoded, counting the bytes handed out (csv.reader never reads ahead)."""

    def __init__(self, fh: io.BufferedReader) -> None:
        self.fh, self.offset = fh, fh.tell()

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self.fh.readline()
        if not line:
            raise StopIteration
        self.offset += len(line)
        return line.decode("utf-8")


def _header(path: str) -> list[str] | None:
    with open(path, "rb") as fh:
        return next(csv.reader(_Lines(fh)), None)


def _csv_points(path: str) -> Iterator[tuple[int, int]]:
    with open(path, "rb") as fh:
        lines = _Lines(fh)
        rows = csv.reader(lines)
        if next(rows, None) is None:
            return
        start = lines.offset
        for number, row in enumerate(rows, start=2):
            if row:
                yield start, number
            start = lines.offset


def read_shard(shard: Sequence[_Segment]) -> list[dict[str, Any]]:
    """The records of a shard, as workers take them (``{"ref", "line"}``, ``{"ref", "header", "row"}``...)."""
    return [record for segment in shard for record in _read(segment)]


def _read(segment: _Segment) -> Iterator[dict[str, Any]]:
    fmt, uri = segment["format"], segment["uri"]
    if fmt == "files":
        yield {"ref": uri, "hex": Path(segment["path"]).read_bytes().hex(), "content_type": content_type(uri)}
    elif fmt == "parquet":
        yield from _parquet(segment)
    else:
        with open(segment["path"], "rb") as fh:
            fh.seek(segment["start"])
            yield from (_csv(segment, fh) if fmt == "csv" else _jsonl(segment, fh))


def _jsonl(segment: _Segment, fh: io.BufferedReader) -> Iterator[dict[str, Any]]:
    for ref, line in zip(*_jsonl_lines(segment, fh), strict=True):
        yield {"ref": ref, "line": line}


def read_lines(shard: Sequence[_Segment]) -> tuple[list[str], list[bytes]]:
    """The references and raw lines of a JSON-lines shard's records (each segment read in one call)."""
    refs: list[str] = []
    lines: list[bytes] = []
    for segment in shard:
        with open(segment["path"], "rb") as fh:
            fh.seek(segment["start"])
            more_refs, more_lines = _jsonl_lines(segment, fh)
        refs += more_refs
        lines += more_lines
    return refs, lines


def _jsonl_lines(segment: _Segment, fh: io.BufferedReader) -> tuple[list[str], list[bytes]]:
    """A segment's references and lines (a CRLF file's lines keep their CR: JSON takes it as a space)."""
    uri, number, wanted = segment["uri"], segment["number"], segment["count"]
    got = fh.read(segment["end"] - segment["start"]).split(b"\n")
    if got and not got[-1]:
        got.pop()  # after the last newline
    if len(got) == wanted:  # no blank line among them: line numbers follow one another
        return [f"{uri}:{n}" for n in range(number, number + wanted)], got
    kept = [(n, line) for n, line in enumerate(got, start=number) if line.strip()]
    return [f"{uri}:{n}" for n, _ in kept], [line for _, line in kept]


def _csv(segment: _Segment, fh: io.BufferedReader) -> Iterator[dict[str, Any]]:
    left, number = segment["count"], segment["number"]
    for row in csv.reader(_Lines(fh)):
        if row:
            yield {"ref": f"{segment['uri']}:{number}", "header": segment["header"], "row": row}
            left -= 1
            if not left:
                return
        number += 1


def _parquet(segment: _Segment) -> Iterator[dict[str, Any]]:
    """Rows ``start`` to ``start + count`` of a Parquet file, reading only the row groups that hold them."""
    from cprsdk.batch.outputs import parquet_module

    parquet = parquet_module().ParquetFile(segment["path"])
    header = list(parquet.schema_arrow.names)
    first, end, row = segment["start"], segment["start"] + segment["count"], 0
    for group in range(parquet.num_row_groups):
        size = parquet.metadata.row_group(group).num_rows
        if row + size > first and row < end:
            for offset, values in enumerate(parquet.read_row_group(group).to_pylist()):
                if first <= row + offset < end:
                    yield {"ref": f"{segment['uri']}:{row + offset + 1}", "header": header,
                           "row": [plain(values[n]) for n in header]}
        row += size
