"""``cprsdk serve`` (a prediction node) and ``cprsdk predict`` (one request to a node)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cprsdk.cli._common import (
    Subparsers,
    add_batching_flags,
    add_command,
    add_formatter_flags,
    add_input_flags,
    add_local_files_flags,
    add_registry_flags,
    err,
    read_bytes,
)
from cprsdk.config import Settings, load_settings
from cprsdk.errors import ConfigError

if TYPE_CHECKING:
    from cprsdk.node.server import ServeOptions

__all__ = ["add_parsers"]


# ------------------------------------------------------------------ serve


def _env_port() -> int | None:
    import os

    for name in ("AIP_HTTP_PORT", "SAGEMAKER_BIND_TO_PORT"):
        if os.environ.get(name):
            try:
                return int(os.environ[name])
            except ValueError:
                raise ConfigError(f"{name} must be a port number, got {os.environ[name]!r}.") from None
    return None


def _local_settings(args: argparse.Namespace, settings: Settings, work: Path) -> Settings | None:
    """Single-version mode's local files (the model from AIP_STORAGE_URI in a Vertex AI container)."""
    import dataclasses
    import os

    from cprsdk.runtime.resolved import download_model_dir

    uri = os.environ.get("AIP_STORAGE_URI")
    if uri:
        return dataclasses.replace(settings, model_dir=download_model_dir(uri, work / "model"))
    return settings if args.model_dir is not None else None


def _serve_options(args: argparse.Namespace, settings: Settings, local: Settings | None) -> ServeOptions:
    import os

    from cprsdk.cli._common import batching, formatter
    from cprsdk.node.httplimits import HttpLimits
    from cprsdk.node.lifecycle import LifecyclePolicy
    from cprsdk.node.management import read_token
    from cprsdk.node.server import ServeOptions

    output_formatter, formatter_args = formatter(args)
    batch_size, batch_wait = batching(settings)
    return ServeOptions(
        host=args.host or ("0.0.0.0" if _env_port() else "127.0.0.1"),  # a container is reached from outside
        port=args.port or _env_port() or 8080, workers=args.workers,
        predict_timeout=args.predict_timeout, load_timeout=args.load_timeout,
        max_body_bytes=int(args.max_body_mb * 1_000_000), access_log=args.access_log,
        poll_interval=args.poll_interval, registry=settings.registry, local=local,
        model=args.model, version=args.version_name,
        output_formatter=output_formatter, formatter_args=formatter_args or {},
        max_batch_size=batch_size or 1, max_batch_wait_ms=batch_wait or 0.0,
        health_route=os.environ.get("AIP_HEALTH_ROUTE"), predict_route=os.environ.get("AIP_PREDICT_ROUTE"),
        admin_token=read_token(args.admin_token_file), allowed_prefixes=tuple(args.allow_uri_prefix or ()),
        lifecycle=LifecyclePolicy(backoff_initial=min(1.0, args.restart_backoff_max),
                                  backoff_max=args.restart_backoff_max, crash_loop_crashes=args.crash_loop[0],
                                  crash_loop_window=args.crash_loop[1]),
        http_limits=HttpLimits(max_header_bytes=settings.max_header_bytes, header_timeout=settings.header_timeout,
                               body_timeout=settings.body_timeout, keepalive_timeout=settings.keepalive_timeout,
                               max_connections=settings.max_connections),
    )


def _crash_loop(text: str) -> tuple[int, float]:
    count, _, window = text.partition("/")
    try:
        return int(count), float(window)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--crash-loop takes N/S (crashes/seconds, e.g. 5/60), got {text!r}") from None


def _cmd_serve(args: argparse.Namespace) -> int:
    """run a prediction node

    Serve every version in the registry (watched for changes), or one version from local files with
    --model-dir, --package and --prediction-class. Each version runs in its own worker processes. Routes: AI
    Platform v1 predict (management, reads included, behind --admin-token-file), Vertex AI endpoints, KServe
    V1, /healthz, /readyz, /metrics. AIP_HTTP_PORT, AIP_HEALTH_ROUTE, AIP_PREDICT_ROUTE and AIP_STORAGE_URI
    make it a Vertex AI custom container. SIGTERM drains and exits 0.
    """
    import tempfile

    from cprsdk.node.server import run

    flags = {"registry": args.registry, "model_dir": args.model_dir, "packages": args.package,
             "prediction_class": args.prediction_class, "framework": args.framework,
             "max_batch_size": args.max_batch_size, "max_batch_wait_ms": args.max_batch_wait_ms,
             **{key: getattr(args, key) for key in _HTTP_LIMIT_KEYS}}
    settings = load_settings(".", flags)
    with tempfile.TemporaryDirectory(prefix="cprsdk-serve-") as tmp:
        local = _local_settings(args, settings, Path(tmp))
        return run(_serve_options(args, settings, local), announce=err)


_HTTP_LIMIT_KEYS = ("max_header_bytes", "header_timeout", "body_timeout", "keepalive_timeout", "max_connections")


def _add_http_limit_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-header-bytes", type=int, metavar="N",
                   help="cap on a request's header block; past it 431 (default: 32768, nginx's 4 x 8k)")
    p.add_argument("--header-timeout", type=float, metavar="S",
                   help="seconds for a request's whole header block; past it 408 (default: 60)")
    p.add_argument("--body-timeout", type=float, metavar="S",
                   help="seconds for a request's whole body; past it 408 (default: 60)")
    p.add_argument("--keepalive-timeout", type=float, metavar="S",
                   help="seconds an idle connection stays open between requests (default: 75)")
    p.add_argument("--max-connections", type=int, metavar="N",
                   help="connections open at once; a newcomer past it sheds the longest-waiting connection "
                   "without a complete request, else gets 503 (default: 512)")


def _add_serve_parser(sub: Subparsers) -> None:
    p = add_command(sub, "serve", _cmd_serve)
    add_registry_flags(p, role="registry to serve", output=False)
    p.add_argument("--host", help="address to bind (default: 127.0.0.1; 0.0.0.0 when AIP_HTTP_PORT is set)")
    p.add_argument("--port", type=int, help="port (default: $AIP_HTTP_PORT, $SAGEMAKER_BIND_TO_PORT, else 8080)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes per version (default: 1)")
    p.add_argument("--predict-timeout", type=float, default=60.0, metavar="S",
                   help="seconds a prediction may take; past it: 504 and the worker is replaced (default: 60)")
    p.add_argument("--load-timeout", type=float, default=600.0, metavar="S",
                   help="seconds from_path may take; past it the version FAILS (default: 600)")
    p.add_argument("--max-body-mb", type=float, default=1.5, metavar="MB", help="request body limit (default: 1.5)")
    p.add_argument("--restart-backoff-max", type=float, default=60.0, metavar="S",
                   help="cap of the wait between attempts to restart a worker that fails to start or "
                   "crash-loops; it starts at 1 s and doubles (default: 60)")
    p.add_argument("--crash-loop", type=_crash_loop, default=(5, 60.0), metavar="N/S",
                   help="N worker crashes within S seconds make a crash loop: restarts back off (default: 5/60)")
    p.add_argument("--poll-interval", type=float, default=2.0, metavar="S", help="registry poll (default: 2)")
    p.add_argument("--access-log", action="store_true", help="log one JSON line per request")
    _add_http_limit_flags(p)
    p.add_argument("--admin-token-file", metavar="FILE",
                   help="turn on the management routes (models/versions create, delete, setDefault) for "
                   "requests bearing this token")
    p.add_argument("--allow-uri-prefix", action="append", metavar="PREFIX",
                   help="storage prefix the management routes may point a version at (repeat)")
    add_local_files_flags(p, model_dir="single-version mode: the model directory",
                          package="single-version mode: packages", prediction_class="single-version mode: the class")
    p.add_argument("--model", default="default", help="single-version mode: model name (default: default)")
    p.add_argument("--version", dest="version_name", default="v1", help="single-version mode: version (default: v1)")
    add_formatter_flags(p)
    add_batching_flags(p, version=False)


# ------------------------------------------------------------------ predict


def _cmd_predict(args: argparse.Namespace) -> int:
    """send a prediction request to a node

    POST to the node's AI Platform predict route and print the response body.
    """
    from cprsdk.node.client import NodeClient
    from cprsdk.runtime.local import read_request

    client = NodeClient(args.endpoint)
    if args.raw is not None:
        status, data, content_type = client.raw_predict(args.model, read_bytes(args.raw), args.content_type,
                                                        version=args.version_name, accept=args.accept)
        err(f"Content-Type: {content_type}")
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return 0 if status < 300 else 1
    body = read_request(json_instances=args.json_instances, json_request=args.json_request,
                        text_instances=args.text_instances, kwargs=args.kwargs)
    response = client.predict_body(args.model, body, args.version_name)
    print(json.dumps(response.body))
    return 0 if response.ok else 1


def _add_predict_parser(sub: Subparsers) -> None:
    p = add_command(sub, "predict", _cmd_predict)
    p.add_argument("--endpoint", default="http://127.0.0.1:8080", metavar="URL", help="the node")
    p.add_argument("--model", required=True, help="the model")
    p.add_argument("--version", dest="version_name", help="the version (default: the model's default)")
    add_input_flags(p)


def add_parsers(sub: Subparsers) -> None:
    """``serve`` and ``predict``."""
    _add_serve_parser(sub)
    _add_predict_parser(sub)
