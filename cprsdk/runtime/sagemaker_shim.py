"""A stand-in for the SageMaker packages that ``inference.py`` files import, used only where they are absent.

    from sagemaker_containers.beta.framework import content_types, encoders, worker
    from sagemaker_inference import content_types, decoder, encoder

:func:`install` (the adapters call it before importing a predictor) appends an import hook at the
*end* of ``sys.meta_path``. Python asks it for a name only after every folder on ``sys.path`` (the
version's own packages first) has failed to provide it, so an installed ``sagemaker-containers`` or
``sagemaker-inference`` always wins, and a stand-in module is never mixed into a real package.

What the stand-in has (anything else needs the real package in your package's requirements):

    sagemaker_containers.beta.framework
        content_types   JSON, CSV, NPY, OCTET_STREAM, ANY, UTF8_TYPES
        encoders        decode(obj, content_type) -> NumPy array (JSON, CSV, NPY);
                        encode(array_like, content_type) -> str (JSON, CSV) or bytes (NPY);
                        json_to_numpy, csv_to_numpy, npy_to_numpy, array_to_json, array_to_csv, array_to_npy
        worker          Response(response=None, accept=None, status=200, headers=None, mimetype=None)
        errors          ClientError, UnsupportedFormatError (unknown content types)
        transformer     default_model_fn, default_input_fn, default_predict_fn, default_output_fn
        env, modules    importable (scripts import them with the rest), empty
    sagemaker_inference
        content_types, decoder.decode, encoder.encode (and SUPPORTED_CONTENT_TYPES), errors

It differs from the real packages where they would be unsafe or surprising: NPY bodies holding
Python objects are refused (no unpickling of request data), a one-row CSV stays one row (2-D),
and the deprecated ``accept`` argument of ``Response`` is ignored without a warning.
"""

from __future__ import annotations

import http
import importlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from cprsdk.runtime.formats import ARRAY_TYPES, CSV, JSON, NPY, decode_array, media_type
from cprsdk.runtime.formats import encode as _encode

__all__ = ["ClientError", "Response", "UnsupportedFormatError", "decode", "encode", "install"]

_MARK = "__cprsdk_stand_in__"
OCTET_STREAM, ANY = "application/octet-stream", "*/*"


class ClientError(Exception):
    """``errors.ClientError``."""


class UnsupportedFormatError(Exception):
    """``errors.UnsupportedFormatError``: a content type the encoders do not handle.

    From ``input_fn`` it answers 415, from ``output_fn`` 406, as in SageMaker.
    """

    def __init__(self, content_type: str, **kwargs: Any) -> None:
        self.content_type = content_type
        self.message = (f"Content type {content_type} is not supported by this framework. Implement input_fn to "
                        "decode the request, or output_fn to encode the response.")
        super().__init__(self.message)


# ---------------------------------------------------------------- encoders


def decode(obj: bytes | str, content_type: str) -> Any:
    """A JSON, CSV or NPY body as a NumPy array."""
    if media_type(content_type) not in ARRAY_TYPES:
        raise UnsupportedFormatError(content_type)
    return decode_array(obj, content_type)


def encode(array_like: Any, content_type: str) -> str | bytes:
    """An array-like as JSON or CSV text, or NPY bytes."""
    kind = media_type(content_type)
    if kind not in ARRAY_TYPES:
        raise UnsupportedFormatError(content_type)
    body, _ = _encode(array_like, kind)
    return body if kind == NPY else body.decode("utf-8")


def _with_dtype(array: Any, dtype: Any) -> Any:
    return array if dtype is None else array.astype(dtype)


def json_to_numpy(string_like: bytes | str, dtype: Any = None) -> Any:
    return _with_dtype(decode(string_like, JSON), dtype)


def csv_to_numpy(string_like: bytes | str, dtype: Any = None) -> Any:
    return _with_dtype(decode(string_like, CSV), dtype)


def npy_to_numpy(npy_array: bytes) -> Any:
    return decode(npy_array, NPY)


def array_to_json(array_like: Any) -> str | bytes:
    return encode(array_like, JSON)


def array_to_csv(array_like: Any) -> str | bytes:
    return encode(array_like, CSV)


def array_to_npy(array_like: Any) -> str | bytes:
    return encode(array_like, NPY)


# ---------------------------------------------------------------- worker.Response


def _chunks(response: Any) -> list[bytes]:
    if response is None:
        return []
    if isinstance(response, (str, bytes, bytearray)):
        response = [response]
    return [c.encode() if isinstance(c, str) else bytes(c) for c in response]


def _status_code(status: int | str) -> int:
    try:
        return int(status) if not isinstance(status, str) else int(status.split()[0])
    except (ValueError, IndexError):
        raise ValueError(f"Response status must be an HTTP status code, got {status!r}") from None


class Response:
    """``worker.Response``: a body, a status and a mimetype, read the way a flask ``Response`` is read.

    ``response`` is a str, bytes, or an iterable of them; ``mimetype`` defaults to application/json.
    """

    default_mimetype = JSON

    def __init__(self, response: Any = None, accept: str | None = None, status: int | str = http.HTTPStatus.OK,
                 headers: Mapping[str, str] | None = None, mimetype: str | None = None,
                 direct_passthrough: bool = False) -> None:
        self.response = _chunks(response)
        self.status_code = _status_code(status)
        self.headers = dict(headers or {})
        given = next((v for k, v in self.headers.items() if k.lower() == "content-type"), None)
        self.mimetype = mimetype or media_type(given) or self.default_mimetype
        self._content_type = given
        self.direct_passthrough = direct_passthrough

    @property
    def content_type(self) -> str:
        """The Content-Type header: the mimetype, with ``; charset=utf-8`` for text types (as werkzeug adds)."""
        if self._content_type:
            return self._content_type
        textual = self.mimetype.startswith("text/") or self.mimetype.endswith("+xml")
        return f"{self.mimetype}; charset=utf-8" if textual else self.mimetype

    @property
    def status(self) -> str:
        try:
            return f"{self.status_code} {http.HTTPStatus(self.status_code).phrase.upper()}"
        except ValueError:
            return f"{self.status_code} UNKNOWN"

    def get_data(self, as_text: bool = False) -> bytes | str:
        data = b"".join(self.response)
        return data.decode("utf-8") if as_text else data

    @property
    def data(self) -> bytes | str:
        return self.get_data()

    def __repr__(self) -> str:
        return f"<Response {len(self.get_data())} bytes [{self.status}]>"


# ---------------------------------------------------------------- transformer defaults


def default_model_fn(model_dir: str) -> Any:
    raise NotImplementedError("Please provide a model_fn implementation.")


def default_input_fn(input_data: bytes | str, content_type: str) -> Any:
    return decode(input_data, content_type)


def default_predict_fn(data: Any, model: Any) -> Any:
    raise NotImplementedError("Please provide a predict_fn implementation.")


def default_output_fn(prediction: Any, accept: str) -> Response:
    return Response(response=encode(prediction, accept), mimetype=accept)


# ---------------------------------------------------------------- the import hook


@dataclass(frozen=True)
class _StandIn:
    package: bool = False
    attributes: Mapping[str, Any] = field(default_factory=dict)
    submodules: Mapping[str, str] = field(default_factory=dict)  # attribute -> module it names


_CONTENT_TYPES = {"JSON": JSON, "CSV": CSV, "NPY": NPY, "OCTET_STREAM": OCTET_STREAM, "ANY": ANY,
                  "UTF8_TYPES": [JSON, CSV]}
_ERRORS = {"ClientError": ClientError, "UnsupportedFormatError": UnsupportedFormatError}
_ENCODERS = {f.__name__: f for f in (decode, encode, json_to_numpy, csv_to_numpy, npy_to_numpy, array_to_json,
                                     array_to_csv, array_to_npy)}
_TRANSFORMER = {f.__name__: f for f in (default_model_fn, default_input_fn, default_predict_fn, default_output_fn)}
_SC = "sagemaker_containers"
_FRAMEWORK_PARTS = {"content_types": "_content_types", "encoders": "_encoders", "worker": "_worker",
                    "errors": "_errors", "env": "_env", "modules": "_modules", "transformer": "_transformer"}

_MODULES: dict[str, _StandIn] = {
    _SC: _StandIn(package=True, submodules={"beta": f"{_SC}.beta"}),
    f"{_SC}._content_types": _StandIn(attributes=_CONTENT_TYPES),
    f"{_SC}._encoders": _StandIn(attributes=_ENCODERS),
    f"{_SC}._worker": _StandIn(attributes={"Response": Response}),
    f"{_SC}._errors": _StandIn(attributes=_ERRORS),
    f"{_SC}._env": _StandIn(),
    f"{_SC}._modules": _StandIn(),
    f"{_SC}._transformer": _StandIn(attributes=_TRANSFORMER),
    f"{_SC}.beta": _StandIn(package=True, submodules={"framework": f"{_SC}.beta.framework"}),
    f"{_SC}.beta.framework": _StandIn(package=True,
                                      submodules={k: f"{_SC}.{v}" for k, v in _FRAMEWORK_PARTS.items()}),
    "sagemaker_inference": _StandIn(package=True, submodules={
        n: f"sagemaker_inference.{n}" for n in ("content_types", "decoder", "encoder", "errors")}),
    "sagemaker_inference.content_types": _StandIn(attributes=_CONTENT_TYPES),
    "sagemaker_inference.decoder": _StandIn(attributes={"decode": decode}),
    "sagemaker_inference.encoder": _StandIn(attributes={"encode": encode,
                                                        "SUPPORTED_CONTENT_TYPES": set(ARRAY_TYPES)}),
    "sagemaker_inference.errors": _StandIn(attributes=_ERRORS),
}


_SHOWN = {f"{_SC}.{v}": f"{_SC}.beta.framework.{k}" for k, v in _FRAMEWORK_PARTS.items()}  # how scripts name them


def _missing(name: str, provided: Iterable[str]) -> Callable[[str], Any]:
    has = ", ".join(sorted(provided)) or "nothing"

    def __getattr__(attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        raise AttributeError(f"{name}.{attribute} is not in cprsdk's stand-in for the SageMaker package (it has "
                             f"{has}); add the real package to your package's requirements to use it.")

    return __getattr__


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the stand-in modules when nothing on ``sys.path`` has them."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        stand_in = _MODULES.get(fullname)
        if stand_in is None:
            return None
        parent = fullname.rpartition(".")[0]
        if parent and not getattr(sys.modules.get(parent), _MARK, False):
            return None  # the real package is installed: never mix a stand-in into it
        return importlib.machinery.ModuleSpec(fullname, self, is_package=stand_in.package)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        stand_in = _MODULES[module.__name__]
        shown = _SHOWN.get(module.__name__, module.__name__)
        module.__doc__ = f"cprsdk's stand-in for {shown} (cprsdk.runtime.sagemaker_shim)."
        module.__dict__.update(stand_in.attributes)
        setattr(module, _MARK, True)
        for attribute, target in stand_in.submodules.items():
            setattr(module, attribute, importlib.import_module(target))
        module.__dict__["__getattr__"] = _missing(shown, [*stand_in.attributes, *stand_in.submodules])


_FINDER = _StandInFinder()


def install() -> None:
    """Let ``sagemaker_containers`` and ``sagemaker_inference`` import where they are not installed."""
    if not any(isinstance(finder, _StandInFinder) for finder in sys.meta_path):
        sys.meta_path.append(_FINDER)
