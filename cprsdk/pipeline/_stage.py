"""Stages as the user adds them, and segments: the groups of stages that share one set of workers."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cprsdk.errors import PipelineError
from cprsdk.runtime.predictor import load_predictor

__all__ = ["PredictorFactory", "Segment", "Stage", "make_stage", "segments_of"]


@dataclass(frozen=True)
class Stage:
    """One ``add``: ``fn`` is the function, or with ``factory`` the zero-argument maker of it."""

    name: str
    fn: Callable[..., Any]
    workers: int
    timeout: float | None
    batch_size: int | None
    batcher: Callable[[list[Any]], Any] | None
    batch_wait: float
    processes: bool
    factory: bool
    split_on_error: bool

    @property
    def plain(self) -> bool:
        """One worker, no timeout, no batch, a thread, no setup: it runs inside the previous stage's worker."""
        return (self.workers == 1 and self.timeout is None and self.batch_size is None
                and not self.processes and not self.factory)

    @property
    def batched(self) -> bool:
        return self.batch_size is not None


@dataclass(frozen=True)
class Segment:
    """A head stage with its own workers and input queue, and the plain stages fused after it."""

    head: Stage
    tail: tuple[Stage, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return (self.head.name, *(s.name for s in self.tail))


@dataclass(frozen=True)
class PredictorFactory:
    """Picklable recipe for a model stage: each worker loads the predictor once, in its own thread or process."""

    prediction_class: str
    model_dir: str
    paths: tuple[str, ...] = ()
    predict_kwargs: tuple[tuple[str, Any], ...] = ()

    def __call__(self) -> Callable[[Sequence[Any]], Any]:
        predictor = load_predictor(self.prediction_class, self.model_dir, paths=self.paths)
        kwargs = dict(self.predict_kwargs)

        def predict(instances: Sequence[Any]) -> Any:
            return predictor.predict(list(instances), **kwargs)

        return predict

    @classmethod
    def of(cls, prediction_class: str, model_dir: str | os.PathLike[str], *,
           paths: Sequence[str | os.PathLike[str]], predict_kwargs: Mapping[str, Any] | None) -> PredictorFactory:
        return cls(prediction_class, os.fspath(model_dir), tuple(os.fspath(p) for p in paths),
                   tuple(sorted((predict_kwargs or {}).items())))


def _positive_int(stage: str, key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PipelineError(f"Stage {stage!r}: {key} must be a whole number of at least 1, got {value!r}.")
    return value


def _seconds(stage: str, key: str, value: object, *, zero: bool) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value >= 0 if zero else value > 0)
    if not ok:
        bound = "0 or more" if zero else "more than 0"
        raise PipelineError(f"Stage {stage!r}: {key} must be a number of seconds, {bound}; got {value!r}.")
    return float(value)  # type: ignore[arg-type]


def _check_picklable(name: str, fn: Callable[..., Any]) -> None:
    try:
        pickle.dumps(fn)
    except Exception as exc:
        raise PipelineError(
            f"Stage {name!r} runs in worker processes, but its function {fn!r} cannot be pickled "
            f"({type(exc).__name__}: {exc}).",
            hint="Define it at module level in an importable module (not a lambda or a nested function), "
            "or drop processes=True to run it in threads.",
        ) from None


def _default_name(fn: Callable[..., Any], taken: Sequence[str], position: int) -> str:
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return name if name not in taken else f"{name}#{position}"


def make_stage(fn: Callable[..., Any], *, taken: Sequence[str], name: str | None, workers: int | None,
               timeout: float | None, batch_size: int | None, batcher: Callable[[list[Any]], Any] | None,
               batch_wait: float, processes: bool, factory: bool, split_on_error: bool) -> Stage:
    """Validate one ``add`` and return its :class:`Stage`; every message names the stage and the value."""
    label = name or getattr(fn, "__name__", None) or repr(fn)
    if not callable(fn):
        raise PipelineError(f"Stage {label!r}: expected a function, got {type(fn).__name__} {fn!r}.")
    if name is not None and (not isinstance(name, str) or not name):
        raise PipelineError(f"Stage name must be a non-empty string, got {name!r}.")
    if name in taken:
        raise PipelineError(f"Stage name {name!r} is already used in this pipeline.",
                            hint="Give each stage its own name=.")
    if batcher is not None and batch_size is None:
        raise PipelineError(f"Stage {label!r} has a batcher but no batch_size.",
                            hint="Give batch_size=N: the batcher receives lists of up to N values.")
    if batcher is not None and not callable(batcher):
        raise PipelineError(f"Stage {label!r}: batcher must be a function of a list, got {batcher!r}.")
    stage = Stage(
        name=name or _default_name(fn, taken, len(taken) + 1),
        fn=fn,
        workers=1 if workers is None else _positive_int(label, "workers", workers),
        timeout=None if timeout is None else _seconds(label, "timeout", timeout, zero=False),
        batch_size=None if batch_size is None else _positive_int(label, "batch_size", batch_size),
        batcher=batcher,
        batch_wait=_seconds(label, "batch_wait", batch_wait, zero=True),
        processes=bool(processes),
        factory=factory,
        split_on_error=bool(split_on_error),
    )
    if stage.processes:
        _check_picklable(stage.name, fn)
    return stage


def segments_of(stages: Sequence[Stage]) -> tuple[Segment, ...]:
    """Fuse each plain stage into the segment before it; every other stage starts a segment."""
    segments: list[Segment] = []
    for stage in stages:
        if stage.plain and segments:
            segments[-1] = Segment(segments[-1].head, (*segments[-1].tail, stage))
        else:
            segments.append(Segment(stage, ()))
    return tuple(segments)
