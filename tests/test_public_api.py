"""One front door: `cprsdk.__all__` is sorted, complete, and every name in it exists."""

from __future__ import annotations

import inspect

import cprsdk


def test_all_is_sorted_and_resolves() -> None:
    assert cprsdk.__all__ == sorted(cprsdk.__all__)
    for name in cprsdk.__all__:
        assert hasattr(cprsdk, name), name


def test_every_public_name_is_in_all() -> None:
    public = {n for n, v in vars(cprsdk).items()
              if not n.startswith("_") and not inspect.ismodule(v) and n != "annotations"}
    assert public == set(cprsdk.__all__) - {"__version__"}


def test_prediction_error_refuses_a_non_error_status() -> None:
    assert cprsdk.PredictionError("bad", status_code=422).status_code == 422
    try:
        cprsdk.PredictionError("bad", status_code=200)
    except ValueError as exc:
        assert "400 to 599" in str(exc)
    else:
        raise AssertionError("status 200 was accepted")
