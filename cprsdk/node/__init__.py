"""The prediction node: an ASGI front process routing requests to one worker pool per version.

    app.py       the ASGI app: request rules, handlers, errors as Google's envelope, request ids (``create_app``)
    routes.py    the route table: verb and path to handler name
    versions.py  the versions the node serves: registry watch, fetch, install, CREATING -> READY
    pool.py      worker processes of one version, spoken to over a framed pipe protocol
    worker.py    the worker process itself: loads the predictor, answers frames
    protocol.py  the frames
    metrics.py   Prometheus counters and histograms
    server.py    ``cprsdk serve``: uvicorn, signals, graceful shutdown
"""

from __future__ import annotations

from cprsdk.node.app import create_app
from cprsdk.node.versions import VersionManager

__all__ = ["VersionManager", "create_app"]
