"""The image's entrypoint script, and its health check (``python -m cprsdk.image.entrypoint``).

The script runs ``cprsdk serve`` for the image's one version, whichever platform starts it:
SageMaker passes ``serve`` (dropped) and unpacks the model into /opt/ml/model; KServe's storage
initializer fills /mnt/models; Vertex AI sets ``AIP_STORAGE_URI`` (the node downloads it);
a baked model is in /opt/cprsdk/model; else the version's model is fetched from the registry it
was built from, verified. ``CPRSDK_REGISTRY`` serves a whole registry instead. It binds
``CPRSDK_HOST`` (default 0.0.0.0) and ``CPRSDK_PORT``, else ``PORT`` (Cloud Run), else the node's
own choice (``AIP_HTTP_PORT``, ``SAGEMAKER_BIND_TO_PORT``, 8080).
"""

from __future__ import annotations

import os
import sys
import urllib.request

__all__ = ["SCRIPT", "main"]

SCRIPT = r"""#!/bin/sh
# cprsdk image entrypoint (written by cprsdk image build): cprsdk serve for this image's version.
set -eu
if [ "${1:-}" = "serve" ]; then shift; fi   # SageMaker starts the container as `IMAGE serve`
set -- --host "${CPRSDK_HOST:-0.0.0.0}" "$@"
port="${CPRSDK_PORT:-${PORT:-}}"
if [ -n "$port" ]; then set -- --port "$port" "$@"; fi
if [ -n "${CPRSDK_REGISTRY:-}" ]; then exec cprsdk serve --registry "$CPRSDK_REGISTRY" "$@"; fi
has_files() { [ -d "$1" ] && [ -n "$(ls -A "$1" 2>/dev/null)" ]; }
if [ -z "${AIP_STORAGE_URI:-}" ]; then
    model_dir=""
    for dir in ${CPRSDK_MODEL_DIR:-} /opt/ml/model /mnt/models /opt/cprsdk/model; do
        if has_files "$dir"; then model_dir="$dir"; break; fi
    done
    if [ -z "$model_dir" ]; then model_dir="$(python -m cprsdk.image.boot model-dir)"; fi
    set -- --model-dir "$model_dir" "$@"
fi
exec cprsdk serve @PACKAGES@ --prediction-class @PREDICTION_CLASS@@EXTRA@ \
    --model "$CPRSDK_IMAGE_MODEL" --version "$CPRSDK_IMAGE_VERSION" "$@"
"""


def _port() -> str:
    for name in ("CPRSDK_PORT", "PORT", "AIP_HTTP_PORT", "SAGEMAKER_BIND_TO_PORT"):
        if os.environ.get(name):
            return os.environ[name]
    return "8080"


def main() -> int:
    """The HEALTHCHECK: 0 when the node answers /healthz."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{_port()}/healthz", timeout=2) as response:
            return 0 if response.status == 200 else 1
    except OSError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
