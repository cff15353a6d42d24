"""The ceiling for `bench_node.py`: a minimal raw ASGI app that calls the sample predictor in-process.

POST any path with {"instances": [...]} -> {"predictions": [...]}; nothing else (no routing, no
validation beyond what orjson.loads does, no request ids, no metrics): the practical ceiling of a
Python server on uvicorn for this predictor. Run it with uvicorn, from the repository root:

    CEILING_SAMPLE=DIR .venv/bin/uvicorn ceiling_app:app --app-dir bench --host 127.0.0.1 --port 8081 \
        --loop uvloop --http httptools --lifespan on --log-level warning --no-access-log

DIR is a trained copy of samples/zerocenterer-sklearn: its folder goes on sys.path (for
``predictor`` and ``preprocess``) and its ``model/`` is what ``MyPredictor.from_path`` loads, at
import time, before uvicorn listens. CEILING_PREDICTION_CLASS (default ``predictor.MyPredictor``)
and CEILING_MODEL_DIR (default DIR/model) override the defaults.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import orjson

_HEADERS = [(b"content-type", b"application/json")]


def _load() -> Any:
    sample = Path(os.environ["CEILING_SAMPLE"]).resolve()
    sys.path.insert(0, str(sample))
    module, _, name = os.environ.get("CEILING_PREDICTION_CLASS", "predictor.MyPredictor").rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    return cls.from_path(os.environ.get("CEILING_MODEL_DIR", str(sample / "model")))


predictor = _load()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    try:
        data = orjson.loads(b"".join(chunks))
        body = orjson.dumps({"predictions": predictor.predict(data["instances"])}, option=orjson.OPT_SERIALIZE_NUMPY)
        status = 200
    except Exception as exc:  # a bad request must not look like a fast success
        body, status = orjson.dumps({"error": f"{type(exc).__name__}: {exc}"}), 400
    await send({"type": "http.response.start", "status": status,
                "headers": _HEADERS + [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
