"""cprsdk.Pipeline: kinds, keys and order kept; every input ends as an output or an error."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cprsdk.errors import CprError
from cprsdk.pipeline import ItemError, Pipeline, PipelineError

pytestmark = pytest.mark.timeout(60)


def double(x: int) -> int:
    return 2 * x


def jitter(x: Any) -> Any:
    """Finish out of order: later items are often faster."""
    time.sleep(random.uniform(0, 0.004))
    return x


def _accounted(out_keys: list[Any], errors: dict[Any, ItemError], inputs: list[Any]) -> None:
    """Every input is in the output or in the errors, exactly once."""
    assert len(out_keys) == len(set(out_keys))
    assert not set(out_keys) & set(errors)
    assert sorted(out_keys + list(errors)) == sorted(inputs)


# -- kinds, keys and order ------------------------------------------------------------------------

def test_dict_keeps_its_keys_in_their_order() -> None:
    inputs = {f"k{i}": i for i in random.Random(1).sample(range(50), 50)}
    pipe = Pipeline().add(jitter, workers=4).add(double)
    out = pipe(inputs)
    assert isinstance(out, dict)
    assert list(out) == list(inputs)
    assert out == {k: 2 * v for k, v in inputs.items()}
    assert pipe.errors == {}


@pytest.mark.parametrize("kind", [list, tuple])
def test_a_list_or_tuple_gives_index_output_pairs_in_index_order(kind: type[list[Any]] | type[tuple[Any, ...]]) -> None:
    inputs = kind(range(40))
    out = Pipeline().add(jitter, workers=6).add(lambda b: [2 * x for x in b], batch_size=4)(inputs)
    assert type(out) is kind
    assert list(out) == [(i, 2 * i) for i in range(40)]


def test_a_generator_gives_a_lazy_generator_of_pairs() -> None:
    pipe = Pipeline().add(jitter, workers=3).add(lambda x: 10 // x)
    out = pipe(x for x in [5, 2, 0, 1])
    assert isinstance(out, Iterator) and not isinstance(out, (list, tuple))
    assert list(out) == [(0, 2), (1, 5), (3, 10)]
    assert list(pipe.errors) == [2] and pipe.errors[2].type == "ZeroDivisionError"


def test_a_set_gives_element_output_pairs_and_unhashable_outputs_are_errors() -> None:
    assert Pipeline().add(double)({1, 2, 3}) == {(1, 2), (2, 4), (3, 6)}
    pipe = Pipeline().add(lambda x: [x] if x == "b" else x.upper())
    assert pipe({"a", "b"}) == {("a", "A")}
    error = pipe.errors["b"]
    assert (error.stage, error.type) == ("output", "TypeError")
    assert "unhashable" in error.message and "pass a list or a dict" in error.message


def test_empty_inputs_give_empty_outputs_of_their_kind() -> None:
    pipe = Pipeline().add(double, workers=2).add(lambda b: b, batch_size=4)
    assert (pipe([]), pipe({}), pipe(()), pipe(set()), list(pipe(iter([])))) == ([], {}, (), set(), [])


# -- failures are recorded, never dropped ---------------------------------------------------------

def test_a_failing_item_is_reported_with_its_key_type_and_message() -> None:
    def parse(text: str) -> int:
        return int(text)

    pipe = Pipeline().add(parse, workers=2).add(double)
    out = pipe({"a": "1", "b": "two", "c": "3"})
    assert out == {"a": 2, "c": 6}
    message = "invalid literal for int() with base 10: 'two'"
    assert pipe.errors == {"b": ItemError("b", "parse", "ValueError", message)}
    assert str(pipe.errors["b"]) == f"'b': stage 'parse' raised ValueError: {message}"


def test_a_timeout_is_reported_with_the_stage_and_loses_nothing() -> None:
    def fetch(x: int) -> int:
        time.sleep(2.0 if x in (3, 7) else 0.005)
        return x

    pipe = Pipeline().add(fetch, workers=2, timeout=0.3).add(double)
    start = time.monotonic()
    out = pipe(list(range(12)))
    assert time.monotonic() - start < 1.8  # the stuck calls are left behind, not waited for
    assert out == [(i, 2 * i) for i in range(12) if i not in (3, 7)]
    assert sorted(pipe.errors) == [3, 7]
    for error in pipe.errors.values():
        assert (error.stage, error.type) == ("fetch", "TimeoutError")
        assert "stage 'fetch'" in error.message and "0.3 s" in error.message and "background" in error.message


def test_a_batch_that_times_out_fails_each_of_its_items() -> None:
    def model(batch: list[int]) -> list[int]:
        time.sleep(2.0 if 5 in batch else 0)
        return batch

    pipe = Pipeline().add(model, batch_size=4, timeout=0.3)
    out = pipe(list(range(8)))
    _accounted([k for k, _ in out], pipe.errors, list(range(8)))
    assert 5 in pipe.errors and all(e.type == "TimeoutError" for e in pipe.errors.values())


def test_a_thousand_items_through_three_stages_with_random_failures() -> None:
    rng = random.Random(6)
    bad = {stage: set(rng.sample(range(1000), 40)) for stage in ("read", "model", "write")}

    def read(x: int) -> int:
        if x in bad["read"]:
            raise OSError(f"cannot read {x}")
        time.sleep(random.uniform(0, 0.001))
        return x

    def model(batch: list[int]) -> list[int]:
        broken = [x for x in batch if x in bad["model"]]
        if broken:
            raise ValueError(f"bad rows {broken}")
        return [x * 10 for x in batch]

    def write(x: int) -> int:
        if x // 10 in bad["write"]:
            raise KeyError(x // 10)
        return x + 1

    pipe = Pipeline().add(read, workers=8).add(model, batch_size=32, workers=2).add(write, workers=3, timeout=5)
    out = pipe(list(range(1000)))
    keys = [k for k, _ in out]
    _accounted(keys, pipe.errors, list(range(1000)))
    assert keys == sorted(keys) and all(v == 10 * k + 1 for k, v in out)
    first_failure = {x: next((s for s in ("read", "model", "write") if x in bad[s]), None) for x in range(1000)}
    assert {k: e.stage for k, e in pipe.errors.items()} == {x: s for x, s in first_failure.items() if s}
    assert pipe.errors[min(bad["model"] - bad["read"])].message.startswith("bad rows [")


def test_a_failing_batch_is_retried_item_by_item_unless_asked_not_to() -> None:
    def model(batch: list[int]) -> list[int]:
        if 3 in batch:
            raise ValueError("row 3 is malformed")
        return [x + 100 for x in batch]

    pipe = Pipeline(max_in_flight=8).add(model, batch_size=8, batch_wait=1)
    assert pipe(list(range(8))) == [(i, i + 100) for i in range(8) if i != 3]
    assert list(pipe.errors) == [3]
    strict = Pipeline(max_in_flight=8).add(model, batch_size=8, batch_wait=1, split_on_error=False)
    assert strict(list(range(8))) == []
    assert sorted(strict.errors) == list(range(8))


def test_a_batch_output_of_the_wrong_length_fails_every_item_of_that_batch() -> None:
    def model(batch: list[int]) -> list[int]:
        return batch[:-1]

    pipe = Pipeline(max_in_flight=8).add(double, workers=2).add(model, batch_size=4, batch_wait=1, name="model")
    assert pipe(list(range(8))) == []
    assert sorted(pipe.errors) == list(range(8))
    for error in pipe.errors.values():
        assert (error.stage, error.type) == ("model", "PipelineError")
        assert "stage 'model' returned 3 outputs for a batch of 4 items" in error.message


def test_a_failure_while_reading_the_inputs_comes_after_the_items_read() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise OSError("disk gone")

    got = []
    with pytest.raises(PipelineError, match="OSError: disk gone after 2 items"):
        for pair in Pipeline().add(double, workers=2)(source()):
            got.append(pair)
    assert got == [(0, 2), (1, 4)]


# -- backpressure, fusion, clean-up ---------------------------------------------------------------

def test_a_slow_stage_bounds_how_far_a_fast_one_runs_ahead() -> None:
    lock = threading.Lock()
    counts = {"pulled": 0, "in_flight": 0, "peak": 0}

    def source() -> Iterator[int]:
        for i in range(150):
            counts["pulled"] += 1
            yield i

    def produce(x: int) -> int:
        with lock:
            counts["in_flight"] += 1
            counts["peak"] = max(counts["peak"], counts["in_flight"])
        return x

    def consume(x: int) -> int:
        time.sleep(0.002)
        with lock:
            counts["in_flight"] -= 1
        return x

    pipe = Pipeline(max_in_flight=8).add(produce, workers=4).add(consume, workers=2)
    for delivered, (index, _) in enumerate(pipe(source()), start=1):
        assert index == delivered - 1
        assert counts["pulled"] <= delivered + 8  # the input is read lazily, never far ahead
    assert 2 <= counts["peak"] <= 8


def test_consecutive_plain_stages_run_in_the_same_thread_with_no_queue() -> None:
    threads: dict[tuple[str, int], int] = {}

    def mark(name: str) -> Any:
        def stage(x: int) -> int:
            threads[(name, x)] = threading.get_ident()
            return x
        stage.__name__ = name
        return stage

    pipe = Pipeline().add(mark("read"), workers=4).add(mark("decode")).add(mark("scale"), workers=1)
    def model(batch: list[int]) -> list[int]:
        threads.update({("model", x): threading.get_ident() for x in batch})
        return batch

    pipe.add(model, batch_size=8).add(mark("label"))
    pipe.add(mark("write"), workers=2)
    assert pipe.segments == (("read", "decode", "scale"), ("model", "label"), ("write",))
    assert pipe(list(range(60))) == [(x, x) for x in range(60)]
    for x in range(60):
        assert threads[("read", x)] == threads[("decode", x)] == threads[("scale", x)]
        assert threads[("model", x)] == threads[("label", x)] != threads[("read", x)]
        assert threads[("write", x)] != threads[("label", x)]


def test_closing_the_output_early_stops_the_workers() -> None:
    def slowly(x: int) -> int:
        time.sleep(0.01)
        return x

    out = Pipeline().add(slowly, workers=4)(iter(range(10_000)))
    assert next(out) == (0, 0)
    out.close()
    assert not [t.name for t in threading.enumerate() if t.name.startswith("cprsdk-pipeline-slowly")]


# -- model stages and process workers -------------------------------------------------------------

COUNTING_PREDICTOR = '''
import os

class CountingPredictor:
    @classmethod
    def from_path(cls, model_dir):
        with open(os.path.join(model_dir, "loads.txt"), "a") as f:
            f.write(f"{os.getpid()}\\n")
        return cls()

    def predict(self, instances, **kwargs):
        if 13 in instances:
            raise ValueError("unlucky 13")
        return [x * kwargs.get("factor", 2) for x in instances]
'''


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_a_model_stage_loads_the_predictor_once_per_worker(tmp_path: Path, processes: bool) -> None:
    (tmp_path / "counting_predictor.py").write_text(COUNTING_PREDICTOR)
    (tmp_path / "model").mkdir()
    pipe = Pipeline().add(jitter, workers=4)
    pipe.add_predictor("counting_predictor.CountingPredictor", tmp_path / "model", paths=[tmp_path],
                       batch_size=16, workers=2, processes=processes, predict_kwargs={"factor": 3})
    assert pipe(list(range(200))) == [(i, 3 * i) for i in range(200) if i != 13]
    assert pipe.errors == {13: ItemError(13, "counting_predictor.CountingPredictor", "ValueError", "unlucky 13")}
    loads = (tmp_path / "model" / "loads.txt").read_text().split()
    assert len(loads) == 2
    if processes:
        assert len(set(loads)) == 2 and str(os.getpid()) not in loads


def test_a_process_worker_that_times_out_is_replaced() -> None:
    pipe = Pipeline().add(time.sleep, processes=True, timeout=0.5)
    assert pipe([0, 30, 0.01]) == [(0, None), (2, None)]
    error = pipe.errors[1]
    assert (error.stage, error.type) == ("sleep", "TimeoutError")
    assert "killed and a new one started" in error.message


def test_a_worker_setup_that_fails_stops_the_run_naming_the_stage(tmp_path: Path) -> None:
    pipe = Pipeline().add(double).add_predictor("missing_module.Predictor", tmp_path, batch_size=4)
    with pytest.raises(PipelineError, match="setup of stage 'missing_module.Predictor' failed.*PredictorImportError"):
        pipe(list(range(10)))


def test_a_base_exception_in_a_stage_stops_the_run_loudly() -> None:
    def leave(x: int) -> int:
        raise SystemExit(3)

    with pytest.raises(PipelineError, match="raised SystemExit: 3; the run was stopped"):
        Pipeline().add(leave, workers=2)(list(range(5)))


# -- configuration errors name the value and the fix ----------------------------------------------

@pytest.mark.parametrize(("build", "message"), [
    (lambda p: p.add(double, workers=0), "workers must be a whole number of at least 1, got 0"),
    (lambda p: p.add(double, timeout=-1), "timeout must be a number of seconds, more than 0; got -1"),
    (lambda p: p.add(double, batcher=list), "has a batcher but no batch_size"),
    (lambda p: p.add(lambda x: x, processes=True), "cannot be pickled"),
    (lambda p: p.add(double).add(double, name="double"), "'double' is already used"),
    (lambda p: p.add(42), "expected a function, got int"),
])
def test_bad_stages_are_refused_when_added(build: Any, message: str) -> None:
    with pytest.raises(PipelineError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build(Pipeline())


def test_bad_calls_are_refused_before_anything_runs() -> None:
    assert issubclass(PipelineError, CprError)
    with pytest.raises(PipelineError, match="no stages"):
        Pipeline()([1])
    with pytest.raises(PipelineError, match=r"single str .* Wrap it in a list"):
        Pipeline().add(double)("abc")  # type: ignore[call-overload]  # a str is refused, as the overloads say
    with pytest.raises(PipelineError, match="got int"):
        Pipeline().add(double)(7)  # type: ignore[call-overload]
    with pytest.raises(PipelineError, match="max_in_flight=4 is smaller than stage 'double'.s batch_size=8"):
        Pipeline(max_in_flight=4).add(double, batch_size=8)([1])
