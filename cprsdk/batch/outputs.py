"""A shard's prediction and error files, encoded in the worker: JSON lines (gzip or not) or Parquet.

``--output-format jsonl`` (default) writes ``part-NNNNN.jsonl``; ``--output-compression gzip``
makes it ``part-NNNNN.jsonl.gz`` (written with no timestamp, so a rerun writes the same bytes).
``--output-format parquet`` (needs pyarrow) writes ``part-NNNNN.parquet`` with the string columns
``input``, ``instance`` or ``key``, and ``prediction``, the last two as JSON text (a model's
outputs need not share one type); its codec is snappy, or gzip with ``--output-compression gzip``.
Error files are JSON lines, compressed like the predictions.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Sequence
from typing import Any

import orjson

from cprsdk.errors import ConfigError

__all__ = ["check", "decode_lines", "dumps", "dumps_texts", "encode", "join", "parquet_module", "suffixes"]

FORMATS = ("jsonl", "parquet")
COMPRESSIONS = ("none", "gzip")


def check(spec: dict[str, Any]) -> None:
    fmt, compression = spec.get("output_format", "jsonl"), spec.get("output_compression", "none")
    if fmt not in FORMATS or compression not in COMPRESSIONS:
        raise ConfigError(f"--output-format {fmt!r} / --output-compression {compression!r}: use "
                          f"{' or '.join(FORMATS)} / {' or '.join(COMPRESSIONS)}.")
    if fmt == "parquet":
        parquet_module()


def suffixes(spec: dict[str, Any]) -> tuple[str, str]:
    """The suffixes of a shard's prediction and error files."""
    gz = ".gz" if spec.get("output_compression") == "gzip" else ""
    return (".parquet" if spec.get("output_format") == "parquet" else f".jsonl{gz}"), f".jsonl{gz}"


def dumps(value: Any) -> bytes:
    """Compact JSON (orjson; the standard library for what it refuses, such as integers past 64 bits)."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def dumps_texts(values: Sequence[Any]) -> list[str]:
    """Each value as compact JSON text (:func:`dumps`), taken in C while orjson can."""
    try:
        return list(map(bytes.decode, map(orjson.dumps, values)))
    except orjson.JSONEncodeError:
        return [dumps(value).decode() for value in values]


def _jsonl(lines: Sequence[dict[str, Any]]) -> bytes:
    try:
        return b"".join([orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE) for line in lines])
    except orjson.JSONEncodeError:
        return b"".join([dumps(line) + b"\n" for line in lines])


def encode(spec: dict[str, Any], lines: Sequence[dict[str, Any]], *, errors: bool = False) -> bytes:
    """The file of ``lines`` (prediction lines, or error lines with ``errors``)."""
    gz = spec.get("output_compression") == "gzip"
    if spec.get("output_format") == "parquet" and not errors:
        return _parquet(lines, "key" if spec.get("key_field") else "instance", "gzip" if gz else "snappy")
    data = _jsonl(lines)
    return gzip.compress(data, mtime=0) if gz else data


def decode_lines(spec: dict[str, Any], data: bytes, *, errors: bool = False) -> list[dict[str, Any]]:
    """The lines of a file :func:`encode` wrote (for joining two halves of a shard)."""
    if spec.get("output_format") == "parquet" and not errors:
        pq = parquet_module()
        rows = pq.read_table(io.BytesIO(data)).to_pylist()
        return [{k: (v if k == "input" else json.loads(v)) for k, v in row.items()} for row in rows]
    if spec.get("output_compression") == "gzip":
        data = gzip.decompress(data)
    return [json.loads(line) for line in data.splitlines()]


def join(spec: dict[str, Any], first: bytes, second: bytes, *, errors: bool = False) -> bytes:
    """One file of two files' lines, in order."""
    if spec.get("output_format") != "parquet" and spec.get("output_compression") != "gzip":
        return first + second
    return encode(spec, decode_lines(spec, first, errors=errors) + decode_lines(spec, second, errors=errors),
                  errors=errors)


def _parquet(lines: Sequence[dict[str, Any]], head: str, codec: str) -> bytes:
    import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]

    pq = parquet_module()
    columns = {"input": [line["input"] for line in lines],
               head: [json.dumps(line[head]) for line in lines],
               "prediction": [json.dumps(line["prediction"]) for line in lines]}
    table = pa.table({name: pa.array(values, type=pa.string()) for name, values in columns.items()})
    out = io.BytesIO()
    pq.write_table(table, out, compression=codec)
    return out.getvalue()


def parquet_module() -> Any:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise ConfigError("Parquet needs pyarrow.", hint="pip install 'cprsdk[parquet]'") from None
    return pq
