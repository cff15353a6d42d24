"""``Pipeline``: stages with workers, timeouts and batches, called like a function; nothing is lost.

    pipe = Pipeline()
    pipe.add(fetch, workers=32, timeout=5)          # I/O: 32 threads
    pipe.add(decode)                                 # plain: runs in the fetch threads, no queue
    pipe.add_predictor("predictor.MyPredictor", "model", paths=["."], batch_size=128)
    labels = pipe({url: url for url in urls})        # {url: label}, input order
    pipe.errors                                      # {url: ItemError(key, stage, type, message)}

Semantics (docs/pipeline.md): a dict gives a dict with the same keys; a list, tuple or any other
iterable gives ``(index, output)`` pairs (a list, a tuple, a lazy generator); a set gives a set
of ``(element, output)`` pairs. Every input ends either in the output or in ``pipe.errors``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, TypeVar, overload

from cprsdk.errors import PipelineError
from cprsdk.pipeline._errors import ItemError
from cprsdk.pipeline._run import Run
from cprsdk.pipeline._stage import PredictorFactory, Segment, Stage, make_stage, segments_of

__all__ = ["ItemError", "Pipeline", "PipelineError"]

K = TypeVar("K")
T = TypeVar("T")
_OUTPUT = "output"  # the stage named in an error raised while building the output itself


def _keyed(inputs: object) -> tuple[str, Iterator[tuple[Any, Any]]]:
    """The kind of output to build, and the inputs as (key, value) pairs."""
    if isinstance(inputs, Mapping):
        return "dict", iter(inputs.items())
    if isinstance(inputs, (str, bytes, bytearray)):
        raise PipelineError(f"Pipeline input is a single {type(inputs).__name__} ({inputs[:40]!r}), not a "
                            "collection of items.", hint="Wrap it in a list: pipe([value]).")
    if isinstance(inputs, list):
        return "list", enumerate(inputs)
    if isinstance(inputs, tuple):
        return "tuple", enumerate(inputs)
    if isinstance(inputs, AbstractSet):
        return "set", ((element, element) for element in list(inputs))
    if not isinstance(inputs, Iterable):
        raise PipelineError(f"Pipeline input must be a dict, list, tuple, set or other iterable, got "
                            f"{type(inputs).__name__}.")
    return "iterator", enumerate(inputs)


class Pipeline:
    """Stages run by parallel workers (threads, or processes when asked), connected by bounded queues.

    ``max_in_flight`` bounds how many items are between the input and the output at any time
    (read from the input, not yet returned); by default twice the sum over the stages of
    ``workers * batch_size``. ``errors`` holds the failed items of the latest call.
    """

    def __init__(self, *, max_in_flight: int | None = None) -> None:
        if max_in_flight is not None and (isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int)
                                          or max_in_flight < 1):
            raise PipelineError(f"max_in_flight must be a whole number of at least 1, got {max_in_flight!r}.")
        self._max_in_flight = max_in_flight
        self._stages: list[Stage] = []
        self.errors: dict[Any, ItemError] = {}

    def add(self, fn: Callable[[Any], Any], *, name: str | None = None, workers: int | None = None,
            timeout: float | None = None, batch_size: int | None = None,
            batcher: Callable[[list[Any]], Any] | None = None, batch_wait: float = 0.1,
            processes: bool = False, split_on_error: bool = True) -> Pipeline:
        """Append a stage calling ``fn(value)``, or with ``batch_size`` ``fn(batcher(values))``; returns self.

        A stage with none of ``workers`` (other than 1), ``timeout``, ``batch_size``, ``batcher`` or
        ``processes`` is plain: it runs right after the stage before it, in the same worker.
        """
        self._stages.append(make_stage(
            fn, taken=self.stages, name=name, workers=workers, timeout=timeout, batch_size=batch_size,
            batcher=batcher, batch_wait=batch_wait, processes=processes, factory=False,
            split_on_error=split_on_error))
        return self

    def add_factory(self, factory: Callable[[], Callable[[Any], Any]], *, name: str | None = None,
                    workers: int | None = None, timeout: float | None = None, batch_size: int | None = None,
                    batcher: Callable[[list[Any]], Any] | None = None, batch_wait: float = 0.1,
                    processes: bool = False, split_on_error: bool = True) -> Pipeline:
        """Like :meth:`add`, but each worker first calls ``factory()`` once and then uses the function it returns.

        With ``processes=True`` the factory is pickled and called inside each worker process.
        """
        self._stages.append(make_stage(
            factory, taken=self.stages, name=name, workers=workers, timeout=timeout, batch_size=batch_size,
            batcher=batcher, batch_wait=batch_wait, processes=processes, factory=True,
            split_on_error=split_on_error))
        return self

    def add_predictor(self, prediction_class: str, model_dir: str | os.PathLike[str], *,
                      paths: Sequence[str | os.PathLike[str]] = (), batch_size: int = 64, workers: int = 1,
                      processes: bool = False, timeout: float | None = None, batch_wait: float = 0.1,
                      predict_kwargs: Mapping[str, Any] | None = None, name: str | None = None) -> Pipeline:
        """A model stage: each worker loads ``prediction_class`` from ``model_dir`` once (as
        :func:`cprsdk.load_predictor` does), then calls ``predict(batch, **predict_kwargs)`` per batch.
        """
        factory = PredictorFactory.of(prediction_class, model_dir, paths=paths, predict_kwargs=predict_kwargs)
        return self.add_factory(factory, name=name or prediction_class, workers=workers, timeout=timeout,
                                batch_size=batch_size, batch_wait=batch_wait, processes=processes)

    @property
    def stages(self) -> tuple[str, ...]:
        """The stage names, in order."""
        return tuple(stage.name for stage in self._stages)

    @property
    def segments(self) -> tuple[tuple[str, ...], ...]:
        """The stage names grouped by the workers that run them; a queue sits between groups, none inside."""
        return tuple(segment.names for segment in segments_of(self._stages))

    def __repr__(self) -> str:
        return f"Pipeline({' | '.join(' -> '.join(names) for names in self.segments)})"

    @overload
    def __call__(self, inputs: Mapping[K, Any]) -> dict[K, Any]: ...
    @overload
    def __call__(self, inputs: list[Any]) -> list[tuple[int, Any]]: ...
    @overload
    def __call__(self, inputs: tuple[Any, ...]) -> tuple[tuple[int, Any], ...]: ...
    @overload
    def __call__(self, inputs: AbstractSet[T]) -> set[tuple[T, Any]]: ...
    @overload
    def __call__(self, inputs: Iterator[Any]) -> Generator[tuple[int, Any], None, None]: ...

    def __call__(self, inputs: object) -> Any:
        """Run every input through the stages; the output has the input's kind and order (see the module doc)."""
        kind, keyed = _keyed(inputs)
        segments = self._segments_to_run()
        run = Run(segments, keyed, window=self._window(segments))
        errors: dict[Any, ItemError] = {}
        self.errors = errors
        delivered = _delivered(run, errors)
        if kind == "dict":
            return dict(delivered)
        if kind == "list":
            return list(delivered)
        if kind == "tuple":
            return tuple(delivered)
        if kind == "set":
            return _as_set(delivered, errors)
        return delivered

    def _segments_to_run(self) -> tuple[Segment, ...]:
        if not self._stages:
            raise PipelineError("This pipeline has no stages.", hint="Add one first: pipe.add(fn).")
        return segments_of(self._stages)

    def _window(self, segments: Sequence[Segment]) -> int:
        if self._max_in_flight is None:
            return 2 * sum(s.head.workers * (s.head.batch_size or 1) for s in segments)
        widest = max(segments, key=lambda s: s.head.batch_size or 1).head
        if (widest.batch_size or 1) > self._max_in_flight:
            raise PipelineError(
                f"max_in_flight={self._max_in_flight} is smaller than stage {widest.name!r}'s "
                f"batch_size={widest.batch_size}: its batches could never fill.",
                hint="Raise max_in_flight or lower batch_size.")
        return self._max_in_flight


def _delivered(run: Run, errors: dict[Any, ItemError]) -> Generator[tuple[Any, Any], None, None]:
    """(key, output) of each item that made it, in input order; the others go to ``errors``."""
    for outcome in run.outcomes():
        if outcome.error is None:
            yield outcome.key, outcome.value
        else:
            errors[outcome.key] = outcome.error


def _as_set(delivered: Iterator[tuple[Any, Any]], errors: dict[Any, ItemError]) -> set[tuple[Any, Any]]:
    result: set[tuple[Any, Any]] = set()
    for key, value in delivered:
        try:
            result.add((key, value))
        except TypeError:
            errors[key] = ItemError(key, _OUTPUT, "TypeError", (
                f"the output is a {type(value).__name__}, which is unhashable, so it cannot go in the set of "
                "(element, output) pairs a set input returns; pass a list or a dict instead"))
    return result
