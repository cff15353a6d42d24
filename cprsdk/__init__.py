"""cprsdk: package, check, deploy and serve custom prediction routines.

A prediction routine is a class with ``from_path(model_dir)`` and ``predict(instances, **kwargs)``
(the AI Platform contract). ``cprsdk package`` builds it into a reproducible sdist and proves it
will load; ``cprsdk local predict`` runs it exactly as a prediction node does.
"""

from __future__ import annotations

from .batch import ItemError, Pipeline, PipelineError
from .config import Settings, load_settings
from .deploy import DeployRequest, DeployResult, deploy
from .errors import (
    AlreadyExists,
    BuildError,
    ConfigError,
    CprError,
    IntegrityError,
    NotFound,
    NotSupportedError,
    PackageError,
    PickleCheckError,
    PreconditionFailed,
    PredictionError,
    PredictorContractError,
    PredictorImportError,
    PredictorLoadError,
    QuotaError,
    RegistryError,
    RequestError,
    ResponseError,
    StorageError,
)
from .local import LocalResult, local_predict
from .packager import PackageResult, package
from .pickles import GlobalRef, PickleScan, scan_file
from .predictor import Predictor, import_prediction_class, load_predictor
from .registry import Registry
from .storage import Store, open_store

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "BuildError",
    "ConfigError",
    "CprError",
    "DeployRequest",
    "DeployResult",
    "GlobalRef",
    "IntegrityError",
    "ItemError",
    "LocalResult",
    "NotFound",
    "NotSupportedError",
    "PackageError",
    "PackageResult",
    "PickleCheckError",
    "PickleScan",
    "Pipeline",
    "PipelineError",
    "PreconditionFailed",
    "PredictionError",
    "Predictor",
    "PredictorContractError",
    "PredictorImportError",
    "PredictorLoadError",
    "QuotaError",
    "Registry",
    "RegistryError",
    "RequestError",
    "ResponseError",
    "Settings",
    "StorageError",
    "Store",
    "__version__",
    "deploy",
    "import_prediction_class",
    "load_predictor",
    "load_settings",
    "local_predict",
    "open_store",
    "package",
    "scan_file",
]
