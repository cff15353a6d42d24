"""Canned input decoders and output formatters, chosen by content type or by name.

Decoders (a raw body and its content type in, Python data out): ``application/json``,
``text/csv`` (rows of numbers, a header line is skipped when it is not numeric),
``application/x-npy``, ``text/plain`` (one string per line) and ``image/*`` (Pillow, the
``image`` extra: an RGB or grey array, resized to the declared shape).

Array decoders and encoders (SageMaker's defaults, see ``sagemaker.py``): JSON, CSV and NPY bodies
to a NumPy array (``decode_array``), and a prediction to JSON, CSV or NPY by the Accept header
(``encode``).

Formatters (for hook-style modules), set per version: ``raw`` (``format_as`` json | csv | tsv)
and ``classification`` (``num_preds`` 1, ``probability`` true, ``label`` false, ``index`` false;
labels from ``labels.json``, ``labels.txt`` or ``labels.pkl`` in the model directory).
"""

from __future__ import annotations

import csv
import io
import json
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cprsdk.errors import ConfigError, RequestError, ResponseError
from cprsdk.runtime.payload import parse_json, to_jsonable

__all__ = ["ARRAY_TYPES", "decode", "decode_array", "encode", "format_output", "load_labels", "media_type",
           "validate_formatter"]

JSON, CSV, NPY, TEXT = "application/json", "text/csv", "application/x-npy", "text/plain"
ARRAY_TYPES = (JSON, CSV, NPY)  # what decode_array reads and encode writes


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _text(body: bytes | str) -> str:
    if isinstance(body, str):
        return body
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(f"The body is not UTF-8 text: {exc}.") from None


def _decode_csv(body: bytes | str) -> Any:
    import numpy as np

    rows = [r for r in csv.reader(io.StringIO(_text(body))) if r]
    if rows and not _numeric(rows[0]):
        rows = rows[1:]
    try:
        return np.asarray([[float(v) for v in row] for row in rows])
    except ValueError as exc:
        raise RequestError(f"The CSV body has a value that is not a number: {exc}.") from None


def _numeric(row: list[str]) -> bool:
    try:
        [float(v) for v in row]
    except ValueError:
        return False
    return True


def _decode_npy(body: bytes | str) -> Any:
    import numpy as np

    if isinstance(body, str):
        raise RequestError("A .npy body must be bytes, not text.", status_code=415)
    try:
        return np.load(io.BytesIO(body), allow_pickle=False)
    except ValueError as exc:
        raise RequestError(f"The body is not a NumPy .npy array without objects: {exc}.") from None


def _decode_image(body: bytes, shape: tuple[int, ...] | None = None) -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise RequestError("Image bodies need Pillow on the node.", status_code=415,
                           hint="pip install 'cprsdk[image]'") from None
    import numpy as np

    try:
        opened = Image.open(io.BytesIO(body))
        opened.load()
    except Exception as exc:
        raise RequestError(f"The body is not an image Pillow can read: {exc}.") from None
    channels = shape[-1] if shape and len(shape) == 3 else 3
    image = opened.convert("L" if channels == 1 else "RGB")
    if shape and len(shape) >= 2:
        image = image.resize((shape[1], shape[0]))
    array = np.asarray(image, dtype="float32")
    return array[..., None] if channels == 1 and array.ndim == 2 else array


_DECODERS: dict[str, Callable[[bytes], Any]] = {
    JSON: lambda body: parse_json(body),
    CSV: _decode_csv,
    NPY: _decode_npy,
    TEXT: lambda body: body.decode("utf-8").splitlines(),
}


def decode(body: bytes, content_type: str | None, *, shape: tuple[int, ...] | None = None) -> Any:
    """The canned decoder for ``content_type``; 415 when there is none."""
    kind = media_type(content_type)
    if kind.startswith("image/"):
        return _decode_image(body, shape)
    if kind not in _DECODERS:
        raise RequestError(f"No decoder for Content-Type {kind or 'none'}.", status_code=415,
                           hint=f"Send one of {', '.join(sorted(_DECODERS))}, image/*, or decode it yourself.")
    return _DECODERS[kind](body)


def _decode_json_array(body: bytes | str) -> Any:
    import numpy as np

    value = parse_json(body)
    if isinstance(value, dict):
        raise RequestError("The JSON body is an object; the default decoder reads a JSON array (of rows) into a "
                           "NumPy array, as SageMaker's does.",
                           hint='Send [[...], ...]; or {"instances": [...]} to :predict; or define input_fn.')
    try:
        return np.asarray(value)
    except ValueError as exc:
        raise RequestError(f"The JSON body is not a rectangular array: {exc}.",
                           hint="Send rows of equal length, or define input_fn to read it.") from None


_ARRAY_DECODERS: dict[str, Callable[[bytes | str], Any]] = {
    JSON: _decode_json_array,
    CSV: _decode_csv,
    NPY: _decode_npy,
}


def decode_array(body: bytes | str, content_type: str | None) -> Any:
    """A JSON, CSV or NPY body (bytes, or text for JSON and CSV) as a NumPy array; 415 otherwise.

    JSON is read with the input policy of ``payload.parse_json``; CSV rows must be numbers (a
    header line that is not is skipped); NPY arrays must hold no Python objects.
    """
    kind = media_type(content_type)
    if kind not in _ARRAY_DECODERS:
        raise RequestError(f"No decoder for Content-Type {kind or 'none'}.", status_code=415,
                           hint=f"Send one of {', '.join(ARRAY_TYPES)}, or define input_fn to decode it.")
    return _ARRAY_DECODERS[kind](body)


def encode(value: Any, accept: str | None) -> tuple[bytes, str]:
    """Encode a prediction by the Accept header: JSON (default), CSV or NPY; 406 otherwise."""
    kind = media_type(accept)
    if kind in ("", "*/*", JSON, "application/*"):
        return json.dumps(to_jsonable(value, "prediction")).encode(), JSON
    if kind == CSV:
        return _csv_text(value, ","), CSV
    if kind == NPY:
        import numpy as np

        out = io.BytesIO()
        np.save(out, np.asarray(value), allow_pickle=False)
        return out.getvalue(), NPY
    raise RequestError(f"Cannot answer with Accept {kind}.", status_code=406,
                       hint=f"Accept one of {JSON}, {CSV}, {NPY}.")


def _csv_text(value: Any, delimiter: str) -> bytes:
    """One line per row (a 1-D array is a column); each value as ``str`` gives it (0.1 for a float32 0.1)."""
    import numpy as np

    try:
        array = np.asarray(value)
    except ValueError as exc:
        raise ResponseError(f"The prediction cannot be written as CSV rows: {exc}.") from None
    if array.ndim > 2:
        raise ResponseError(f"The prediction has {array.ndim} dimensions; CSV holds at most 2.",
                            hint="Reshape it in output_fn, or Accept application/json.")
    rows = array.reshape(-1, 1) if array.ndim < 2 else array
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows([[str(v) for v in row] for row in rows])
    return out.getvalue().encode()


# ---------------------------------------------------------------- formatters

_FORMATTER_ARGS: dict[str, dict[str, type]] = {  # input_shape also sizes the canned image decoder
    "raw": {"format_as": str, "input_shape": list},
    "classification": {"num_preds": int, "probability": bool, "label": bool, "index": bool, "input_shape": list},
}


def validate_formatter(name: str | None, args: Mapping[str, Any] | None) -> None:
    """Refuse an unknown formatter or argument early (at deploy), naming the choices."""
    if name is None:
        if args:
            raise ConfigError("--formatter-args needs --output-formatter.")
        return
    if name not in _FORMATTER_ARGS:
        raise ConfigError(f"Unknown output formatter {name!r}.", hint=f"Choose {' or '.join(_FORMATTER_ARGS)}.")
    for key, value in (args or {}).items():
        expected = _FORMATTER_ARGS[name].get(key)
        if expected is None:
            raise ConfigError(f"The {name} formatter has no argument {key!r}.",
                              hint=f"Its arguments: {', '.join(_FORMATTER_ARGS[name])}.")
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(f"Formatter argument {key} must be {expected.__name__}, got {value!r}.")
    format_as = (args or {}).get("format_as", "json")
    if name == "raw" and format_as not in ("json", "csv", "tsv"):
        raise ConfigError(f"format_as must be json, csv or tsv, got {format_as!r}.")


def load_labels(model_dir: Path) -> list[str] | dict[int, str] | None:
    """Class labels from labels.json, labels.txt (one per line) or labels.pkl in the model directory."""
    if (model_dir / "labels.json").is_file():
        data = json.loads((model_dir / "labels.json").read_text(encoding="utf-8"))
        return {int(k): str(v) for k, v in data.items()} if isinstance(data, dict) else [str(v) for v in data]
    if (model_dir / "labels.txt").is_file():
        return [line.strip() for line in (model_dir / "labels.txt").read_text(encoding="utf-8").splitlines()
                if line.strip()]
    if (model_dir / "labels.pkl").is_file():
        with (model_dir / "labels.pkl").open("rb") as fh:
            data = pickle.load(fh)  # shipped by the model's owner; scanned by `cprsdk package`
        return {int(k): str(v) for k, v in data.items()} if isinstance(data, dict) else [str(v) for v in data]
    return None


def _label(labels: Any, index: int) -> str:
    if labels is None:
        raise ConfigError("The classification formatter was asked for labels, but the model directory has no "
                          "labels.json, labels.txt or labels.pkl.",
                          hint="Add one of them to the model directory, or drop \"label\": true.")
    try:
        return str(labels[index])
    except (IndexError, KeyError):
        return str(index)


def format_output(output: Any, name: str | None, args: Mapping[str, Any] | None,
                  labels: Any = None) -> tuple[bytes, str]:
    """Apply a canned formatter to a model output; (body, content type)."""
    import numpy as np

    args = dict(args or {})
    if name in (None, "raw"):
        fmt = args.get("format_as", "json")
        values = to_jsonable(np.asarray(output).ravel().tolist() if hasattr(output, "__len__") else output)
        if fmt == "json":
            return json.dumps({"outputs": values}).encode(), JSON
        delimiter = "," if fmt == "csv" else "\t"
        flat = values if isinstance(values, list) else [values]
        return delimiter.join(str(v) for v in flat).encode(), CSV if fmt == "csv" else "text/tab-separated-values"
    scores = np.asarray(output, dtype=float).ravel()
    order = np.argsort(-scores, kind="stable")[: max(1, int(args.get("num_preds", 1)))]
    predictions = []
    for i in order:
        item: dict[str, Any] = {}
        if args.get("probability", True):
            item["probability"] = float(scores[i])
        if args.get("label", False):
            item["label"] = _label(labels, int(i))
        if args.get("index", False):
            item["index"] = int(i)
        predictions.append(item)
    return json.dumps({"predictions": predictions}).encode(), JSON
