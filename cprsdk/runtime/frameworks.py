"""Framework versions: a model file served the way AI Platform's prebuilt runtimes served it.

A version created with ``--framework scikit-learn`` or ``--framework xgboost`` and no prediction
class has a model file in its model directory, looked for in AI Platform's order:

    SCIKIT_LEARN   model.joblib, model.pkl
    XGBOOST        model.joblib, model.pkl, then model.bst (an xgboost.Booster)

``instances`` are predicted as those runtimes did: scikit-learn ``predict`` on a 2-D NumPy array
of the instances; XGBoost ``predict`` on an ``xgboost.DMatrix`` of them. The answer is the list
of outputs. Custom code packages (``--package-uris``) are on ``sys.path`` before the file is
loaded, so a pickle's transformer classes import from them.

A resolved framework version is run under the reserved name :func:`framework_target` (in place of
a prediction class), which :func:`cprsdk.runtime.adapters.load_adapter` recognises.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cprsdk.errors import ConfigError, NotSupportedError, PredictorImportError
from cprsdk.runtime.adapters import Adapter, _json_instances
from cprsdk.runtime.formats import JSON
from cprsdk.runtime.payload import dumps_response, split_request

__all__ = ["FRAMEWORKS", "FrameworkAdapter", "framework_of", "framework_target", "load_framework",
           "model_file", "normalize_framework", "rest_spelling", "run_name"]

# gcloud's --framework spellings (and the REST enum itself) -> the REST enum value
_SPELLINGS = {"scikit-learn": "SCIKIT_LEARN", "sklearn": "SCIKIT_LEARN", "scikit_learn": "SCIKIT_LEARN",
              "xgboost": "XGBOOST", "tensorflow": "TENSORFLOW"}
FRAMEWORKS = ("SCIKIT_LEARN", "XGBOOST")
_MODEL_FILES = {"SCIKIT_LEARN": ("model.joblib", "model.pkl"),
                "XGBOOST": ("model.joblib", "model.pkl", "model.bst")}
_PREFIX = "cprsdk-framework:"


def normalize_framework(value: str, *, where: str = "--framework") -> str:
    """The REST enum value (SCIKIT_LEARN, XGBOOST) of a framework name; refuses the others."""
    framework = _SPELLINGS.get(value.strip().lower())
    if framework == "TENSORFLOW":
        raise NotSupportedError(f"{where} {value}: TensorFlow framework versions are not supported yet.",
                                hint="Wrap the SavedModel in a prediction class (from_path loads it, predict "
                                     "calls it) and deploy with --prediction-class.")
    if framework is None:
        raise ConfigError(f"{where} {value!r} is not a framework cprsdk serves.",
                          hint="Use scikit-learn or xgboost (or SCIKIT_LEARN / XGBOOST, as the REST API spells "
                               "them), or deploy a prediction class.")
    return framework


def rest_spelling(value: str) -> str:
    """The REST enum spelling of a framework name when it is one cprsdk knows, else the value as given."""
    return _SPELLINGS.get(value.strip().lower(), value)


def framework_target(framework: str) -> str:
    """The name a framework version runs under, where other versions have their prediction class."""
    return _PREFIX + framework


def run_name(*, prediction_class: str | None, framework: str | None, where: str = "--framework") -> str | None:
    """What a version runs: its prediction class, else its framework's target name (None: neither)."""
    if prediction_class:
        return prediction_class
    return framework_target(normalize_framework(framework, where=where)) if framework else None


def framework_of(name: str) -> str | None:
    """The framework a run name stands for, or None for a prediction class."""
    return name[len(_PREFIX):] if name.startswith(_PREFIX) else None


def model_file(framework: str, model_dir: str | os.PathLike[str]) -> Path:
    """The model file AI Platform would have loaded for ``framework`` from ``model_dir``."""
    names = _MODEL_FILES[framework]
    for name in names:
        path = Path(model_dir, name)
        if path.is_file():
            return path
    raise PredictorImportError(
        f"Framework {framework}: the model directory {os.fspath(model_dir)} has none of {', '.join(names)}.",
        hint=f"Save the model as {names[0]} at the top of the model directory (AI Platform's file names).")


def _load_file(path: Path) -> Any:
    if path.suffix == ".bst":
        import xgboost  # type: ignore[import-not-found, unused-ignore]

        booster = xgboost.Booster()
        booster.load_model(bytearray(path.read_bytes()))  # the format is read from the bytes, whatever the suffix
        return booster
    if path.suffix == ".joblib":
        import joblib  # type: ignore[import-untyped]

        return joblib.load(path)
    with path.open("rb") as handle:
        return pickle.load(handle)  # noqa: S301 - scanned by cprsdk package / deploy before it got here


def load_framework(framework: str, model_dir: str | os.PathLike[str]) -> FrameworkAdapter:
    """Load the framework version's model file; errors name the file and the exception."""
    path = model_file(framework, model_dir)
    try:
        model = _load_file(path)
    except ModuleNotFoundError as exc:
        extra = "cprsdk[xgboost]" if exc.name == "xgboost" else exc.name
        raise PredictorImportError(f"Framework {framework}: loading {path.name} needs module {exc.name!r}, "
                                   "which is not installed.",
                                   hint=f"Install {extra} on the node, or ship the module in a package "
                                        "(--package-uris).") from exc
    except Exception as exc:
        raise PredictorImportError(f"Framework {framework}: loading {path.name} raised {type(exc).__name__}: {exc}",
                                   hint="Save the model again with the library versions of this runtime.") from exc
    if not callable(getattr(model, "predict", None)):
        raise PredictorImportError(f"Framework {framework}: {path.name} holds a {type(model).__name__}, which has "
                                   "no predict method.", hint="Save the fitted estimator (or Booster) itself.")
    return FrameworkAdapter(framework=framework, model=model, file=path.name)


@dataclass
class FrameworkAdapter(Adapter):
    """A scikit-learn estimator or XGBoost model, called as AI Platform's prebuilt runtime called it."""

    framework: str
    model: Any
    file: str
    style = "framework"

    def predict(self, instances: list[Any]) -> list[Any]:
        import numpy as np

        if self.framework == "XGBOOST":
            import xgboost

            outputs = self.model.predict(xgboost.DMatrix(np.asarray(instances)))
        else:
            outputs = self.model.predict(np.asarray(instances))
        return list(outputs.tolist() if hasattr(outputs, "tolist") else outputs)

    def handle_json(self, body: dict[str, Any], *, vertex: bool, version: str) -> bytes:
        instances, _ = split_request(body)
        return dumps_response(self.predict(instances), extra={"deployedModelId": version} if vertex else None)

    def handle_raw(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        return self.handle_json(_json_instances(body, content_type), vertex=False, version=""), JSON
