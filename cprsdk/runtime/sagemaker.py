"""What SageMaker's serving containers do around an ``inference.py``, so that one runs unchanged.

    request body    a ``str`` for application/json and text/csv (UTF-8), ``bytes`` otherwise
    Content-Type    missing: application/json
    Accept          missing or */*: $SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT, else application/json
    defaults        by what model_fn returned:
      torch.nn.Module   (the PyTorch container) body -> NumPy -> tensor (float32 from JSON/CSV,
                        the array's own dtype from NPY); model(x) in eval mode under torch.no_grad();
                        a tensor output -> list -> JSON, CSV or NPY by Accept
      anything else     (the scikit-learn container) body -> NumPy (float32 from JSON/CSV);
                        model.predict(x); -> JSON, CSV or NPY by Accept
    output_fn result  a response object (``worker.Response``, ``flask.Response``: its body, its
                      content type, its status), a ``(body, content_type)`` tuple, or a bare body
                      (str or bytes) answered as the Accept type

The functions here know nothing about the adapter; ``adapters.SageMakerAdapter`` strings them together.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from cprsdk.errors import PredictionError, PredictorContractError, RequestError, ResponseError
from cprsdk.runtime.formats import ARRAY_TYPES, CSV, JSON, decode_array, encode, media_type
from cprsdk.runtime.payload import to_jsonable

__all__ = ["DEFAULT_ACCEPT_ENV", "RequestText", "container_accept", "default_input", "default_output",
           "default_predict", "effective_accept", "is_torch_module", "request_body", "response_parts",
           "unsupported_format"]

DEFAULT_ACCEPT_ENV = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"
_TEXT_TYPES = (JSON, CSV)  # the containers' UTF8_TYPES
_ANY = ("", "*/*")


class RequestText(str):
    """A text request body: the ``str`` SageMaker hands ``input_fn``.

    ``decode()`` returns it unchanged, so a handler written for the bytes cprsdk used to pass
    (``body.decode("utf-8")``) keeps working.
    """

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return str(self)


def request_body(body: bytes, content_type: str) -> bytes | RequestText:
    """The body as ``input_fn``/``transform_fn`` get it: text for JSON and CSV, bytes otherwise."""
    if media_type(content_type) not in _TEXT_TYPES:
        return body
    try:
        return RequestText(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RequestError(f"The {media_type(content_type)} body is not UTF-8: {exc}.") from None


def container_accept(environ: Mapping[str, str] | None = None) -> str:
    """The container's default Accept: ``$SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``, else application/json."""
    return (os.environ if environ is None else environ).get(DEFAULT_ACCEPT_ENV) or JSON


def effective_accept(accept: str, default: str) -> str:
    """The Accept header, or ``default`` when it is missing or ``*/*``."""
    return default if media_type(accept) in _ANY else accept


def unsupported_format(exc: BaseException, status_code: int) -> RequestError | None:
    """An UnsupportedFormatError (the real packages' or the stand-in's) as a 415 from input_fn or a 406
    from output_fn, as SageMaker answers it; None for any other exception."""
    if type(exc).__name__ != "UnsupportedFormatError":
        return None
    message = " ".join(str(exc).split())
    return RequestError(message or f"Unsupported format (HTTP {status_code}).", status_code=status_code)


# ---------------------------------------------------------------- the defaults


def _torch() -> Any:
    return sys.modules.get("torch")  # a torch model means torch is imported already


def is_torch_module(model: Any) -> bool:
    torch = _torch()
    return torch is not None and isinstance(model, torch.nn.Module)


def _device(torch: Any) -> Any:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_input(data: bytes | str, content_type: str, model: Any) -> Any:
    """Decode JSON, CSV or NPY into a NumPy array (a tensor for a torch model); 415 otherwise."""
    import numpy as np

    array = decode_array(data, content_type)
    text = media_type(content_type) in _TEXT_TYPES
    if is_torch_module(model):
        torch = _torch()
        tensor = torch.as_tensor(array, dtype=torch.float32) if text else torch.from_numpy(array)
        return tensor.to(_device(torch))
    if text and array.dtype.kind in "biuf":
        return array.astype(np.float32)
    return array


def default_predict(data: Any, model: Any) -> Any:
    """``model(data)`` under ``torch.no_grad()`` for a torch module; else ``model.predict(data)``."""
    if is_torch_module(model):
        torch = _torch()
        device = _device(torch)
        with torch.no_grad():
            model = model.to(device)
            model.eval()
            return model(data.to(device) if isinstance(data, torch.Tensor) else data)
    return model_predict(data, model, hint="Define predict_fn(data, model).")


def model_predict(data: Any, model: Any, *, hint: str) -> Any:
    """``model.predict(data)``, or ``model(data)`` for a callable; ``hint`` says what to define instead."""
    if hasattr(model, "predict"):
        return model.predict(data)
    if callable(model):
        return model(data)
    raise PredictorContractError(f"The model is a {type(model).__name__} with no predict method.", hint=hint)


def _pick(accept: str) -> str:
    """The first type of a (comma-separated) Accept that the encoders write; 406 if none."""
    for part in accept.split(","):
        kind = media_type(part)
        if kind in _ANY or kind == "application/*":
            return JSON
        if kind in ARRAY_TYPES:
            return kind
    raise RequestError(f"Cannot answer with Accept {accept}.", status_code=406,
                       hint=f"Accept one of {', '.join(ARRAY_TYPES)}, or define output_fn.")


def default_output(prediction: Any, accept: str) -> tuple[bytes, str]:
    """Encode a prediction (a tensor becomes a list first) as JSON, CSV or NPY by Accept."""
    torch = _torch()
    if torch is not None and isinstance(prediction, torch.Tensor):
        prediction = prediction.detach().cpu().numpy().tolist()
    return encode(prediction, _pick(accept))


# ---------------------------------------------------------------- what output_fn returned


def _is_response(result: Any) -> bool:
    return callable(getattr(result, "get_data", None)) and hasattr(result, "status_code")


def _from_response(response: Any, fallback: str) -> tuple[bytes, str]:
    data = response.get_data()
    content_type = getattr(response, "content_type", None) or getattr(response, "mimetype", None) or fallback
    status = int(response.status_code)
    if status >= 400:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
        raise PredictionError(f"output_fn answered HTTP {status}: {' '.join(text.split())[:300]}",
                              status_code=status if status <= 599 else 500)
    return (data.encode() if isinstance(data, str) else bytes(data)), str(content_type)


def response_parts(result: Any, accept: str) -> tuple[bytes, str]:
    """(body, content type) of whatever ``output_fn`` or ``transform_fn`` returned."""
    content_type = accept.split(",")[0].strip() or JSON
    if isinstance(result, tuple) and len(result) == 2:
        result, content_type = result[0], str(result[1])
    if _is_response(result):
        return _from_response(result, content_type)
    if isinstance(result, str):
        return result.encode(), content_type
    if isinstance(result, (bytes, bytearray, memoryview)):
        return bytes(result), content_type
    try:
        return json.dumps(to_jsonable(result, "output"), allow_nan=False).encode(), JSON
    except ResponseError as exc:
        raise ResponseError(f"output_fn returned a {type(result).__name__}, not a body: {exc.message}",
                            hint="Return a str or bytes body, (body, content_type), or a worker.Response.") from None

