"""Batch work: :class:`Pipeline`, parallel stages called like a function, where every input ends
as an output or as an :class:`ItemError` in ``pipe.errors``.

    pipeline.py   Pipeline: add / add_factory / add_predictor, and calling it
    _stage.py     a stage as added, and segments (plain stages fused after the one before)
    _run.py       one call: feeder, worker threads, bounded queues, in-order delivery
    _callers.py   how a worker calls its stage: in its thread, under a timeout, or in a child process
    _errors.py    the ItemError record (PipelineError is in the one tree of cprsdk.errors)
"""

from __future__ import annotations

from cprsdk.errors import PipelineError
from cprsdk.pipeline._errors import ItemError
from cprsdk.pipeline.pipeline import Pipeline

__all__ = ["ItemError", "Pipeline", "PipelineError"]
