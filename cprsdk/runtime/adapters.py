"""Every predictor form the node accepts, behind one interface (DESIGN 3.1).

What the prediction class name resolves to decides the adapter:

    a class with from_path + predict          AI Platform CPR   (CprAdapter)
    a class with load + predict               Vertex AI CPR     (VertexAdapter)
    a module with model_fn or transform_fn    SageMaker         (SageMakerAdapter)
    a module with init/preprocess/predict/postprocess (any)    hooks (HookAdapter)
    a framework version (no class): a model file      AI Platform runtime (frameworks.FrameworkAdapter)

Each adapter answers a parsed JSON ``:predict`` body (``handle_json``) and a raw body with its
content type and Accept header (``handle_raw``, for ``:rawPredict`` and ``/invocations``).
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from cprsdk.errors import PredictorContractError, PredictorImportError, RequestError, ResponseError
from cprsdk.runtime import sagemaker_shim
from cprsdk.runtime.formats import JSON, decode, format_output, load_labels, media_type
from cprsdk.runtime.payload import dumps_response, parse_request, split_request, to_jsonable, vertex_parameters
from cprsdk.runtime.predictor import _import_module, import_prediction_class, load_predictor, search_path
from cprsdk.runtime.sagemaker import (
    RequestText,
    container_accept,
    default_input,
    default_output,
    default_predict,
    effective_accept,
    model_predict,
    request_body,
    response_parts,
    unsupported_format,
)

__all__ = ["Adapter", "load_adapter", "resolve_style"]

_HOOKS = ("init", "preprocess", "predict", "postprocess")
_SAGEMAKER_STEPS = ("input_fn", "predict_fn", "output_fn")


class Adapter:
    """One loaded predictor, whatever its form."""

    style = "cpr"

    def handle_json(self, body: dict[str, Any], *, vertex: bool, version: str) -> bytes:
        raise NotImplementedError

    def handle_raw(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        raise NotImplementedError


def _json_instances(body: bytes, content_type: str) -> dict[str, Any]:
    if media_type(content_type) != JSON:
        raise RequestError(f"This predictor takes JSON; got Content-Type {media_type(content_type) or 'none'}.",
                           status_code=415)
    return parse_request(body)


@dataclass
class CprAdapter(Adapter):
    predictor: Any
    style = "cpr"

    def handle_json(self, body: dict[str, Any], *, vertex: bool, version: str) -> bytes:
        instances, kwargs = split_request(body)
        if vertex:
            kwargs = vertex_parameters(body)
        predictions = self.predictor.predict(instances, **kwargs)
        return dumps_response(predictions, extra={"deployedModelId": version} if vertex else None)

    def handle_raw(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        return self.handle_json(_json_instances(body, content_type), vertex=False, version=""), JSON


@dataclass
class VertexAdapter(Adapter):
    predictor: Any
    style = "vertex"

    def handle_json(self, body: dict[str, Any], *, vertex: bool, version: str) -> bytes:
        prepared = self.predictor.preprocess(body) if hasattr(self.predictor, "preprocess") else body
        results = self.predictor.predict(prepared)
        response = (self.predictor.postprocess(results) if hasattr(self.predictor, "postprocess")
                    else {"predictions": results})
        if not isinstance(response, dict):
            response = {"predictions": response}
        if vertex:
            response.setdefault("deployedModelId", version)
        return json.dumps(to_jsonable(response, "response"), allow_nan=False).encode()

    def handle_raw(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        return self.handle_json(_json_instances(body, content_type), vertex=False, version=""), JSON


@dataclass(frozen=True)
class SageMakerContext:
    """What a handler's optional trailing ``context`` argument sees."""

    model_dir: str
    request_content_type: str = JSON
    accept_header: str = JSON
    system_properties: dict[str, Any] = field(default_factory=dict)


def _wants_context(fn: Any, base: int) -> bool:
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return False
    return len(params) > base


def _call(fn: Any, args: Sequence[Any], context: SageMakerContext) -> Any:
    return fn(*args, context) if _wants_context(fn, len(args)) else fn(*args)


def _step(fn: Any, args: Sequence[Any], context: SageMakerContext, unsupported_status: int) -> Any:
    try:
        return _call(fn, args, context)
    except Exception as exc:
        mapped = unsupported_format(exc, unsupported_status)
        if mapped is None:
            raise
        raise mapped from exc


@dataclass
class SageMakerAdapter(Adapter):
    """A SageMaker handler module, with the serving containers' behaviour (see ``sagemaker.py``)."""

    module: ModuleType
    model: Any
    model_dir: str
    accept_default: str = JSON
    style = "sagemaker"

    def handle_raw(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        content_type = content_type or JSON
        return self._run(request_body(body, content_type), content_type,
                         effective_accept(accept, self.accept_default))

    def handle_json(self, body: dict[str, Any], *, vertex: bool, version: str) -> bytes:
        """The ``instances`` list reaches the module as its application/json body; its answer is ``predictions``."""
        instances, _ = split_request(body)
        raw, kind = self._run(RequestText(json.dumps(instances)), JSON, JSON)
        response = _json_answer(raw, kind)
        if not (isinstance(response, dict) and "predictions" in response):
            response = {"predictions": response}
        if vertex:
            response.setdefault("deployedModelId", version)
        return json.dumps(to_jsonable(response, "response"), allow_nan=False).encode()

    def _run(self, data: bytes | str, content_type: str, accept: str) -> tuple[bytes, str]:
        context = SageMakerContext(self.model_dir, content_type, accept)
        transform = getattr(self.module, "transform_fn", None)
        if transform is not None:
            result = _call(transform, (self.model, data, content_type, accept), context)
            return response_parts(result, accept)
        input_fn = getattr(self.module, "input_fn", None)
        if input_fn is None:
            parsed = default_input(data, content_type, self.model)
        else:
            parsed = _step(input_fn, (data, content_type), context, 415)
        predict_fn = getattr(self.module, "predict_fn", None)
        prediction = (_call(predict_fn, (parsed, self.model), context) if predict_fn
                      else default_predict(parsed, self.model))
        output_fn = getattr(self.module, "output_fn", None)
        if output_fn is None:
            return default_output(prediction, accept)
        return response_parts(_step(output_fn, (prediction, accept), context, 406), accept)


def _json_answer(raw: bytes, kind: str) -> Any:
    if media_type(kind) != JSON:
        return raw.decode("utf-8", "replace")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ResponseError(f"The handler answered {kind}, but the body is not JSON: {exc}.",
                            hint="Return json.dumps(...) for application/json, or name the real content "
                                 "type.") from None


def _body_and_type(result: Any, accept: str) -> tuple[bytes, str]:
    content_type = accept
    if isinstance(result, tuple) and len(result) == 2:
        result, content_type = result
    if isinstance(result, str):
        return result.encode(), content_type
    if isinstance(result, (bytes, bytearray)):
        return bytes(result), content_type
    return json.dumps(to_jsonable(result, "output")).encode(), JSON


@dataclass
class HookAdapter(Adapter):
    module: ModuleType
    model: Any
    model_dir: Path
    formatter: str | None = None
    formatter_args: dict[str, Any] = field(default_factory=dict)
    style = "hooks"

    def _one(self, raw: bytes, content_type: str) -> tuple[bytes, str]:
        preprocess = getattr(self.module, "preprocess", None)
        if preprocess is not None:
            data = preprocess(raw, self.model)
        else:
            data = decode(raw, content_type, shape=_declared_shape(self.model, self.formatter_args))
        predict = getattr(self.module, "predict", None)
        output = predict(data, self.model) if predict is not None else model_predict(
            data, self.model, hint="Define predict(data, model) in the hook module.")
        postprocess = getattr(self.module, "postprocess", None)
        if postprocess is not None:
            return _body_and_type(postprocess(output, raw), JSON)
        labels = load_labels(self.model_dir) if (self.formatter_args or {}).get("label") else None
        return format_output(output, self.formatter, self.formatter_args, labels)

    def handle_raw(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        return self._one(body, content_type)

    def handle_json(self, body: dict[str, Any], *, vertex: bool, version: str) -> bytes:
        instances, _ = split_request(body)
        results = []
        for instance in instances:
            raw, kind = self._one(json.dumps(instance).encode(), JSON)
            results.append(json.loads(raw) if media_type(kind) == JSON else raw.decode("utf-8", "replace"))
        return dumps_response(results, extra={"deployedModelId": version} if vertex else None)


def _declared_shape(model: Any, args: Mapping[str, Any] | None) -> tuple[int, ...] | None:
    shape = (args or {}).get("input_shape") or getattr(model, "input_shape", None)
    if shape is None:
        return None
    dims = tuple(int(d) for d in shape if d is not None)
    return dims[-3:] if len(dims) >= 3 else dims


def _default_init(model_dir: str) -> Any:
    for name in ("model.joblib", "model.pkl"):
        if os.path.isfile(os.path.join(model_dir, name)):
            import joblib  # type: ignore[import-untyped]

            return joblib.load(os.path.join(model_dir, name))
    return None


# ---------------------------------------------------------------- resolving a name


def _resolve(name: str, paths: Sequence[str]) -> Any:
    """The object a prediction class name names: a class, or a module."""
    sagemaker_shim.install()  # sagemaker_containers / sagemaker_inference where they are not installed
    with search_path(list(paths), argv0=name):
        module_name, _, attr = name.rpartition(".")
        if module_name:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name and not module_name.startswith(f"{exc.name}."):
                    raise
                module = None
            if module is not None and hasattr(module, attr) and not inspect.ismodule(getattr(module, attr)):
                return getattr(module, attr)
            if module is not None and not hasattr(module, attr) and not _is_module(name):
                return import_prediction_class(name, paths=paths)  # raises: no such attribute, did you mean
        return _import_module(name, name, list(paths) or list(sys.path))


def _is_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def resolve_style(name: str, paths: Sequence[str] = ()) -> str:
    """Which adapter ``name`` needs (cpr, vertex, sagemaker, hooks, framework); raises a contract error if none."""
    if name.startswith("cprsdk-framework:"):
        return "framework"
    target = _resolve(name, paths)
    return _style_of(target, name)


def _style_of(target: Any, name: str) -> str:
    if inspect.isclass(target):
        if inspect.getattr_static(target, "from_path", None) is not None:
            return "cpr"
        if callable(getattr(target, "load", None)) and callable(getattr(target, "predict", None)):
            return "vertex"
        raise PredictorContractError(
            f"Class {name!r} has neither from_path (AI Platform) nor load (Vertex AI).",
            hint="Add `@classmethod def from_path(cls, model_dir)` and `def predict(self, instances, **kwargs)`.")
    if inspect.ismodule(target):
        has_sm = [f for f in ("model_fn", "transform_fn", *_SAGEMAKER_STEPS) if callable(getattr(target, f, None))]
        if callable(getattr(target, "transform_fn", None)):
            mixed = [f for f in _SAGEMAKER_STEPS if callable(getattr(target, f, None))]
            if mixed:
                raise PredictorContractError(
                    f"Module {name!r} defines transform_fn together with {', '.join(mixed)}; SageMaker refuses that.",
                    hint="Keep transform_fn alone, or replace it with input_fn/predict_fn/output_fn.")
        if callable(getattr(target, "model_fn", None)) or callable(getattr(target, "transform_fn", None)):
            return "sagemaker"
        if has_sm:
            raise PredictorContractError(f"Module {name!r} has {', '.join(has_sm)} but no model_fn.",
                                         hint="Add model_fn(model_dir) that loads and returns the model.")
        if any(callable(getattr(target, h, None)) for h in _HOOKS):
            return "hooks"
        raise PredictorContractError(
            f"Module {name!r} has no model_fn or transform_fn (SageMaker) and none of init, preprocess, predict, "
            "postprocess (hooks).", hint="Name a class (module.Class) or a module with those functions.")
    raise PredictorContractError(f"{name!r} is a {type(target).__name__}, not a class or a module.",
                                 hint="Name a class with from_path and predict, or a handler module.")


def load_adapter(name: str, model_dir: str | os.PathLike[str], *, paths: Sequence[str | os.PathLike[str]] = (),
                 formatter: str | None = None, formatter_args: Mapping[str, Any] | None = None) -> Adapter:
    """Import what ``name`` names, load it from ``model_dir`` and wrap it in its adapter."""
    str_paths = [os.fspath(p) for p in paths]
    if name.startswith("cprsdk-framework:"):
        from cprsdk.runtime.frameworks import framework_of, load_framework

        with search_path(str_paths, argv0=name):
            return load_framework(str(framework_of(name)), model_dir)
    target = _resolve(name, str_paths)
    style = _style_of(target, name)
    directory = os.fspath(model_dir)
    with search_path(str_paths, argv0=name):
        try:
            if style == "cpr":
                return CprAdapter(load_predictor(name, directory, paths=str_paths))
            if style == "vertex":
                instance = target()
                instance.load(directory)
                return VertexAdapter(instance)
            if style == "sagemaker":
                model_fn = getattr(target, "model_fn", None)
                model = (_call(model_fn, (directory,), SageMakerContext(directory)) if model_fn else None)
                return SageMakerAdapter(target, model, directory, accept_default=container_accept())
            init = getattr(target, "init", None)
            model = init(directory) if init is not None else _default_init(directory)
            return HookAdapter(target, model, Path(directory), formatter, dict(formatter_args or {}))
        except (PredictorImportError, PredictorContractError):
            raise
        except Exception as exc:
            step = {"vertex": "load", "sagemaker": "model_fn", "hooks": "init"}.get(style, "from_path")
            raise PredictorImportError(f"{name}: {step}({directory!r}) raised {type(exc).__name__}: {exc}",
                                       hint="Fix the loading code or the model directory "
                                            "(the traceback goes to the log).") from exc

