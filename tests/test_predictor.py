"""Loading a prediction class by name, and the errors a user gets when it cannot be used."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cprsdk import Predictor, PredictorContractError, PredictorImportError, import_prediction_class, load_predictor


def test_loads_and_predicts_with_paths_restored(behaviours: Path) -> None:
    path_before, argv_before = list(sys.path), list(sys.argv)
    predictor = load_predictor("echo.Echo", behaviours / "model", paths=[behaviours])
    assert predictor.predict([1, "two"], mode="x") == [
        {"instance": 1, "greeting": "hello", "kwargs": {"mode": "x"}},
        {"instance": "two", "greeting": "hello", "kwargs": {"mode": "x"}},
    ]
    assert sys.path == path_before
    assert sys.argv == argv_before


def test_user_code_sees_a_neutral_argv(behaviours: Path) -> None:
    predictor = load_predictor("argv_reader.ArgvReader", behaviours / "model", paths=[behaviours])
    assert predictor.predict([0]) == [["argv_reader.ArgvReader"]]


def test_module_typo_names_module_and_suggests(behaviours: Path) -> None:
    with pytest.raises(PredictorImportError) as info:
        import_prediction_class("ecko.Echo", paths=[behaviours])
    assert "Cannot import module 'ecko'" in info.value.message
    assert str(behaviours) in info.value.message
    assert info.value.hint == "Did you mean 'echo'?"


def test_class_typo_suggests_the_close_name(behaviours: Path) -> None:
    with pytest.raises(PredictorContractError) as info:
        import_prediction_class("echo.Ekho", paths=[behaviours])
    assert "Module 'echo' has no attribute 'Ekho'" in info.value.message
    assert info.value.hint == "Did you mean 'echo.Echo'?"


def test_missing_dependency_is_named(behaviours: Path) -> None:
    with pytest.raises(PredictorImportError) as info:
        import_prediction_class("imports_missing.ImportsMissing", paths=[behaviours])
    assert "imports 'some_dependency_nobody_installed', which is not installed" in info.value.message


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("not_classmethod.NotClassmethod", "not_classmethod.NotClassmethod.from_path is not a classmethod."),
        ("no_predict.NoPredict", "Class 'no_predict.NoPredict' has no predict method."),
        ("echo.json", "'echo.json' is a module, not a class."),
        ("echo", "'echo' is not a qualified name."),
        ("echo.Echo.", "'echo.Echo.' is not a qualified name."),
    ],
)
def test_contract_errors(behaviours: Path, name: str, message: str) -> None:
    with pytest.raises(PredictorContractError) as info:
        import_prediction_class(name, paths=[behaviours])
    assert message in info.value.message
    assert info.value.hint


def test_not_classmethod_hint_shows_the_fix(behaviours: Path) -> None:
    with pytest.raises(PredictorContractError) as info:
        import_prediction_class("not_classmethod.NotClassmethod", paths=[behaviours])
    assert info.value.hint is not None and "@classmethod" in info.value.hint


def test_from_path_errors_name_the_exception(behaviours: Path) -> None:
    with pytest.raises(PredictorImportError) as info:
        load_predictor("from_path_raises.FromPathRaises", behaviours / "model", paths=[behaviours])
    assert "raised FileNotFoundError: model.joblib is missing" in info.value.message


def test_from_path_returning_none_is_explained(behaviours: Path) -> None:
    with pytest.raises(PredictorContractError) as info:
        load_predictor("from_path_none.FromPathNone", behaviours / "model", paths=[behaviours])
    assert "returned NoneType, which has no predict method" in info.value.message
    assert info.value.hint == "from_path must return an instance of the class: `return cls(...)`."


def test_predictor_base_is_the_documented_contract() -> None:
    class Sub(Predictor):
        pass

    with pytest.raises(NotImplementedError):
        Sub.from_path("model")
    with pytest.raises(NotImplementedError):
        Sub().predict([1])
