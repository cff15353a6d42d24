"""The prediction node: an ASGI front process routing requests to one worker pool per version.

    app.py       routes, request rules, Google's error envelope, request ids (``create_app``)
    versions.py  the versions the node serves: registry watch, fetch, install, CREATING -> READY
    workers.py   worker processes of one version, spoken to over a framed pipe protocol
    worker.py    the worker process itself: loads the predictor, answers frames
    protocol.py  the frames
    metrics.py   Prometheus counters and histograms
    server.py    ``cprsdk serve``: uvicorn, signals, graceful shutdown
"""

from __future__ import annotations

from cprsdk.node.app import create_app
from cprsdk.node.versions import VersionManager

__all__ = ["VersionManager", "create_app"]
