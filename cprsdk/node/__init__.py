"""The prediction node: an ASGI front process routing requests to one worker pool per version.

    app.py       the ASGI app: request rules, handlers, errors as Google's envelope, request ids (``create_app``)
    routes.py    the route table: verb and path to handler name
    versions.py  the versions the node serves: registry watch, resolution, CREATING -> READY
    management.py  AI Platform v1 models/versions/operations routes, reads included (token, prefixes)
    jobs.py      AI Platform batch prediction jobs, run by cprsdk.batch
    pool.py      worker processes of one version, spoken to over a framed pipe protocol
    worker.py    the worker process itself: loads the predictor, answers frames
    protocol.py  the frames
    metrics.py   Prometheus counters and histograms
    server.py    ``cprsdk serve``: uvicorn, signals, graceful shutdown
    client.py    NodeClient: a small client of the node's routes (``cprsdk predict``, tests)
"""

from __future__ import annotations

from cprsdk.node.app import create_app
from cprsdk.node.versions import VersionManager

__all__ = ["VersionManager", "create_app"]
