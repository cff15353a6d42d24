"""The Predictor contract and loading a prediction class by its qualified name."""

from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
import os
import pkgutil
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from cprsdk.errors import PredictorContractError, PredictorImportError
from cprsdk.runtime.breakages import describe_failure

__all__ = ["Predictor", "import_error", "import_prediction_class", "load_predictor", "search_path"]


class Predictor:
    """Documented base for a custom prediction routine (the AI Platform contract).

    Subclassing is optional: any class with a ``from_path`` classmethod and a ``predict``
    method is accepted.
    """

    @classmethod
    def from_path(cls, model_dir: str) -> Predictor:
        """Load the artifacts in ``model_dir`` (always a local folder) and return an instance."""
        raise NotImplementedError(f"{cls.__name__}.from_path is not implemented")

    def predict(self, instances: list[Any], **kwargs: Any) -> list[Any]:
        """Return one JSON-serialisable output per instance.

        ``kwargs`` are the other top-level fields of the request body.
        """
        raise NotImplementedError(f"{type(self).__name__}.predict is not implemented")


@contextlib.contextmanager
def search_path(paths: Sequence[str | os.PathLike[str]], *, argv0: str = "cprsdk") -> Iterator[None]:
    """Put ``paths`` first on ``sys.path`` and give user code a neutral ``sys.argv``; restore both."""
    saved_path, saved_argv = list(sys.path), list(sys.argv)
    sys.path[:0] = [os.fspath(p) for p in paths]
    sys.argv = [argv0]
    try:
        yield
    finally:  # rebind: user code may have replaced the lists themselves
        sys.path = saved_path
        sys.argv = saved_argv


def _split_name(qualified_name: str) -> tuple[str, str]:
    module_name, _, attr = qualified_name.rpartition(".")
    parts = qualified_name.split(".")
    if not module_name or not all(p.isidentifier() for p in parts):
        raise PredictorContractError(
            f"Prediction class {qualified_name!r} is not a qualified name.",
            hint="Name it as module.Class, for example predictor.MyPredictor.",
        )
    return module_name, attr


def _close_modules(name: str, paths: Sequence[str]) -> list[str]:
    top = name.split(".")[0]
    known = [m.name for m in pkgutil.iter_modules([p for p in paths if os.path.isdir(p)])]
    return difflib.get_close_matches(top, known, n=3)


def import_error(qualified_name: str, exc: BaseException, *, module_name: str | None = None,
                 paths: Sequence[str] = ()) -> PredictorImportError:
    """The error that says why importing the module of ``qualified_name`` raised ``exc``, in one message.

    The message names the exception type and message, the file and line of the package's code
    (``paths`` are the package's folders), and the hint the fix of a known legacy breakage
    (see :mod:`cprsdk.runtime.breakages`) where there is one.
    """
    module_name = module_name or qualified_name.rpartition(".")[0] or qualified_name
    failure = describe_failure(exc, sites=paths)
    if isinstance(exc, ModuleNotFoundError):
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            where = ", ".join(paths) if paths else "the installed packages"
            close = _close_modules(missing, paths)
            hint = f"Did you mean {' or '.join(repr(c) for c in close)}?" if close else (
                "Check the module name, and that the module is part of your package."
            )
            return PredictorImportError(
                f"Cannot import module {missing!r} for prediction class {qualified_name!r}: "
                f"it is not in your package nor installed (searched {where}).",
                hint=hint,
            )
        return PredictorImportError(
            f"Module {module_name!r} (for prediction class {qualified_name!r}) imports {missing!r}, "
            f"which is not installed{failure.where()}.",
            hint=failure.hint or f"Declare the distribution that provides {missing!r} in requirements.txt (a bare "
            "folder), install_requires or dependencies: it is then installed with the package. If it is a module "
            "of your own, ship it in the package.",
        )
    return PredictorImportError(
        f"Importing module {module_name!r} for prediction class {qualified_name!r} failed with {failure.sentence()}",
        hint=failure.hint or "Fix the error in that module; it must import without side effects that can fail.",
    )


def _import_module(module_name: str, qualified_name: str, paths: Sequence[str]) -> Any:
    try:
        return importlib.import_module(module_name)
    except Exception as exc:  # user code at import time: report, never crash
        error = import_error(qualified_name, exc, module_name=module_name, paths=paths)
        if isinstance(exc, ModuleNotFoundError):
            raise error from None
        raise error from exc


def _check_contract(obj: Any, qualified_name: str) -> Any:
    if not inspect.isclass(obj):
        kind = "module" if inspect.ismodule(obj) else type(obj).__name__
        raise PredictorContractError(
            f"{qualified_name!r} is a {kind}, not a class.",
            hint="Name a class that has a from_path classmethod and a predict method.",
        )
    from_path = inspect.getattr_static(obj, "from_path", None)
    if from_path is None:
        raise PredictorContractError(
            f"Class {qualified_name!r} has no from_path method.",
            hint="Add `@classmethod def from_path(cls, model_dir): ...` that returns an instance.",
        )
    if not isinstance(from_path, (classmethod, staticmethod)):
        raise PredictorContractError(
            f"{qualified_name}.from_path is not a classmethod.",
            hint="Decorate it with @classmethod: `@classmethod def from_path(cls, model_dir)`.",
        )
    if not callable(getattr(obj, "predict", None)):
        raise PredictorContractError(
            f"Class {qualified_name!r} has no predict method.",
            hint="Add `def predict(self, instances, **kwargs)` that returns a list.",
        )
    return obj


def import_prediction_class(qualified_name: str, *, paths: Sequence[str | os.PathLike[str]] = ()) -> Any:
    """Import ``module.Class`` and check that it meets the Predictor contract.

    ``paths`` are searched first; ``sys.path`` and ``sys.argv`` are restored afterwards.
    """
    module_name, attr = _split_name(qualified_name)
    str_paths = [os.fspath(p) for p in paths]
    with search_path(str_paths, argv0=qualified_name):
        module = _import_module(module_name, qualified_name, str_paths or list(sys.path))
    if not hasattr(module, attr):
        public = [n for n in dir(module) if not n.startswith("_")]
        close = difflib.get_close_matches(attr, public, n=3)
        hint = (
            f"Did you mean {' or '.join(repr(f'{module_name}.{c}') for c in close)}?"
            if close
            else f"Classes in {module_name!r}: "
            + (", ".join(n for n in public if inspect.isclass(getattr(module, n))) or "none")
            + "."
        )
        raise PredictorContractError(
            f"Module {module_name!r} has no attribute {attr!r} (prediction class {qualified_name!r}).",
            hint=hint,
        )
    return _check_contract(getattr(module, attr), qualified_name)


def load_predictor(
    qualified_name: str, model_dir: str | os.PathLike[str], *, paths: Sequence[str | os.PathLike[str]] = ()
) -> Any:
    """Import the prediction class and return ``cls.from_path(model_dir)``, checked.

    ``from_path`` runs with ``paths`` still on ``sys.path``, so pickles in the model directory
    can import modules of the package.
    """
    cls = import_prediction_class(qualified_name, paths=paths)
    with search_path([os.fspath(p) for p in paths], argv0=qualified_name):
        try:
            instance = cls.from_path(os.fspath(model_dir))
        except Exception as exc:
            raise PredictorImportError(
                f"{qualified_name}.from_path({os.fspath(model_dir)!r}) raised {type(exc).__name__}: {exc}",
                hint="Fix the loading code or the model directory (the traceback goes to the log).",
            ) from exc
    if not callable(getattr(instance, "predict", None)):
        raise PredictorContractError(
            f"{qualified_name}.from_path returned {type(instance).__name__}, which has no predict method.",
            hint="from_path must return an instance of the class: `return cls(...)`.",
        )
    return instance
