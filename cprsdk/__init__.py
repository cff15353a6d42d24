"""cprsdk: package, check, deploy and serve custom prediction routines.

A prediction routine is a class with ``from_path(model_dir)`` and ``predict(instances, **kwargs)``
(the AI Platform contract). ``cprsdk package`` builds it into a reproducible sdist and proves it
will load; ``cprsdk local predict`` runs it exactly as a prediction node does.
"""

from __future__ import annotations

from .config import Settings, load_settings
from .errors import (
    BuildError,
    ConfigError,
    CprError,
    NotSupportedError,
    PackageError,
    PickleCheckError,
    PredictionError,
    PredictorContractError,
    PredictorImportError,
    PredictorLoadError,
    QuotaError,
    RequestError,
    ResponseError,
)
from .local import LocalResult, local_predict
from .packager import PackageResult, package
from .pickles import GlobalRef, PickleScan, scan_file
from .predictor import Predictor, import_prediction_class, load_predictor

__version__ = "0.1.0"

__all__ = [
    "BuildError",
    "ConfigError",
    "CprError",
    "GlobalRef",
    "LocalResult",
    "NotSupportedError",
    "PackageError",
    "PackageResult",
    "PickleCheckError",
    "PickleScan",
    "PredictionError",
    "Predictor",
    "PredictorContractError",
    "PredictorImportError",
    "PredictorLoadError",
    "QuotaError",
    "RequestError",
    "ResponseError",
    "Settings",
    "__version__",
    "import_prediction_class",
    "load_predictor",
    "load_settings",
    "local_predict",
    "package",
    "scan_file",
]
