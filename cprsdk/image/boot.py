"""What an image runs besides ``cprsdk serve``: ``python -m cprsdk.image.boot warm|model-dir``.

``warm --prediction-class C PACKAGE...`` (at build time) installs the version's packages into the
image's cache with :func:`resolve_local`, so the node finds them by their sha256 at start and
builds nothing. ``model-dir`` (at start, when no model directory was baked or mounted) fetches
the image's registry version with :func:`resolve_registry_version`, verified, and prints where.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _warm(prediction_class: str, packages: Sequence[str]) -> None:
    from cprsdk.config import load_settings
    from cprsdk.runtime.resolved import resolve_local

    with tempfile.TemporaryDirectory(prefix="cprsdk-warm-") as tmp:
        settings = load_settings(tmp, {"packages": list(packages), "prediction_class": prediction_class,
                                       "model_dir": tmp})
        resolve_local(settings)


def _model_dir() -> Path:
    from cprsdk.errors import ConfigError
    from cprsdk.registry.registry import Registry
    from cprsdk.runtime.resolved import resolve_registry_version

    registry = os.environ.get("CPRSDK_IMAGE_REGISTRY")
    if not registry:
        raise ConfigError("This image has no model directory and names no registry to fetch one from.",
                          hint="Mount the model at /opt/ml/model or /mnt/models, set AIP_STORAGE_URI, or build "
                          "the image with --bake-model.")
    resolved = resolve_registry_version(Registry(registry), os.environ["CPRSDK_IMAGE_MODEL"],
                                        os.environ["CPRSDK_IMAGE_VERSION"])
    return resolved.model_dir


def main(argv: Sequence[str] | None = None) -> int:
    from cprsdk.errors import CprError

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args[:1] == ["warm"] and len(args) >= 3 and args[1] == "--prediction-class":
            _warm(args[2], args[3:])
        elif args == ["model-dir"]:
            print(_model_dir())
        else:
            print("usage: python -m cprsdk.image.boot warm --prediction-class C PACKAGE... | model-dir",
                  file=sys.stderr)
            return 2
    except CprError as exc:
        print(f"ERROR: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"TIP: {exc.hint}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
