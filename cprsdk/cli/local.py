"""``cprsdk local predict``: one request through the packaged predictor, run as a node runs it."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from cprsdk.cli._common import (
    Subparsers,
    add_command,
    add_formatter_flags,
    add_input_flags,
    add_local_files_flags,
    err,
    formatter,
    read_bytes,
)
from cprsdk.config import load_settings
from cprsdk.errors import CprError

if TYPE_CHECKING:
    from cprsdk.runtime.local import LocalResult

__all__ = ["add_parsers"]


def _predict(args: argparse.Namespace) -> LocalResult:
    from cprsdk.runtime.local import local_predict, read_request

    settings = load_settings(".", {"model_dir": args.model_dir, "packages": args.package,
                                   "prediction_class": args.prediction_class, "framework": args.framework})
    name, values = formatter(args)
    if args.raw is not None:
        return local_predict(settings, None, raw=read_bytes(args.raw), content_type=args.content_type,
                             accept=args.accept or "", formatter=name, formatter_args=values)
    body = read_request(json_instances=args.json_instances, json_request=args.json_request,
                        text_instances=args.text_instances, kwargs=args.kwargs)
    return local_predict(settings, body, formatter=name, formatter_args=values)


def _print_raw(raw: bytes, result: LocalResult, *, verbose: bool) -> None:
    """A raw response: its bytes on stdout, its media type (and the predictor's output) on stderr."""
    if result.log and verbose:
        err(result.log.rstrip())
    err(f"Content-Type: {result.content_type}")
    sys.stdout.buffer.write(raw)
    sys.stdout.flush()


def _cmd_local_predict(args: argparse.Namespace) -> int:
    """predict one request with the packaged predictor

    Install the packages the way a prediction node does, then run from_path and predict in a fresh
    interpreter. Prints the response body ({"predictions": [...]}) on stdout; on failure prints {"error":
    {...}} and exits 1.
    """
    from cprsdk.errors import error_body

    try:
        result = _predict(args)
    except CprError as exc:  # the envelope on stdout too, as for a predictor's own errors
        print(json.dumps(error_body(exc.status_code, str(exc))))
        raise
    if result.raw is not None:
        _print_raw(result.raw, result, verbose=args.verbose)
        return 0
    if result.log and (args.verbose or not result.ok):
        err(result.log.rstrip())
    if args.timings:
        err("timings: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in result.timings.items()))
    print(json.dumps(result.body))
    return 0 if result.ok else 1


def add_parsers(sub: Subparsers) -> None:
    """``local predict``."""
    local = sub.add_parser("local", help="run a predictor on this machine, as the node runs it")
    local_sub = local.add_subparsers(dest="local_command", metavar="COMMAND", required=True)
    p = add_command(local_sub, "predict", _cmd_local_predict)
    add_local_files_flags(p, model_dir="local model directory (default: model)",
                          package="an sdist, wheel or source folder; repeat for several (default: the current folder)")
    add_input_flags(p)
    add_formatter_flags(p)
    p.add_argument("--timings", action="store_true", help="print where the time went, on stderr")
    p.add_argument("-v", "--verbose", action="store_true", help="show the predictor's own output")
