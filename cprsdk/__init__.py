"""cprsdk: package, check, deploy and serve custom prediction routines.

A prediction routine is a class with ``from_path(model_dir)`` and ``predict(instances, **kwargs)``
(the AI Platform contract). ``cprsdk package`` builds it into a reproducible sdist and proves it
will load; ``cprsdk local predict`` runs it exactly as a prediction node does.
"""

from __future__ import annotations

from cprsdk.config import Settings, load_settings
from cprsdk.errors import (
    AlreadyExists,
    BuildError,
    ConfigError,
    CprError,
    IntegrityError,
    ManifestError,
    NodeError,
    NodeUnreachable,
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
    UnreadablePickle,
    WaitTimeout,
)
from cprsdk.packaging.packager import PackageResult, package
from cprsdk.packaging.pickles import GlobalRef, PickleScan, scan_file
from cprsdk.pipeline import ItemError, Pipeline, PipelineError
from cprsdk.registry.deploy import DeployRequest, DeployResult, deploy
from cprsdk.registry.registry import Registry
from cprsdk.runtime.local import LocalResult, local_predict
from cprsdk.runtime.predictor import Predictor, import_prediction_class, load_predictor
from cprsdk.storage import Store, open_store

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
    "ManifestError",
    "NodeError",
    "NodeUnreachable",
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
    "UnreadablePickle",
    "WaitTimeout",
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
