"""``cprsdk serve``: the node on uvicorn, with a graceful SIGTERM.

On SIGTERM or SIGINT the node reports not ready at once (``/readyz`` 503), stops accepting new
connections, lets in-flight requests finish, drains every version's workers and exits 0.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cprsdk.config import Settings
from cprsdk.errors import ConfigError
from cprsdk.node.app import Node, NodeOptions, create_app
from cprsdk.node.httplimits import HttpLimits, fit_descriptor_limit, limited_protocol
from cprsdk.node.lifecycle import LifecyclePolicy
from cprsdk.node.versions import VersionManager
from cprsdk.registry.manifest import Manifest
from cprsdk.registry.registry import Registry
from cprsdk.runtime.resolved import ResolvedVersion, resolve_local

__all__ = ["ServeOptions", "build_node", "run"]


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    predict_timeout: float = 60.0
    load_timeout: float = 600.0
    max_pending: int = 256
    max_body_bytes: int = 1_500_000
    access_log: bool = False
    poll_interval: float = 2.0
    registry: str | None = None
    # single-version mode: local files (model_dir, packages and prediction_class of these settings)
    local: Settings | None = None
    model: str = "default"
    version: str = "v1"
    admin_token: str | None = None
    allowed_prefixes: tuple[str, ...] = ()
    health_route: str | None = None
    predict_route: str | None = None
    output_formatter: str | None = None
    formatter_args: dict[str, Any] = field(default_factory=dict)
    max_batch_size: int = 1  # dynamic batching for versions whose manifest sets none (1: off)
    max_batch_wait_ms: float = 0.0
    max_records: int = 1000  # operations and finished batch jobs the node keeps in memory (the newest)
    lifecycle: LifecyclePolicy = LifecyclePolicy()  # worker restarts: backoff, crash loops, log rate
    http_limits: HttpLimits = field(default_factory=HttpLimits)


def build_node(options: ServeOptions) -> Node:
    """The ASGI app for ``options``: single-version when local files are given, else the registry."""
    manager = VersionManager(
        registry=None if options.local else Registry(options.registry), workers=options.workers,
        predict_timeout=options.predict_timeout, load_timeout=options.load_timeout, max_pending=options.max_pending,
        lifecycle=options.lifecycle,
        max_batch_size=options.max_batch_size, max_batch_wait_ms=options.max_batch_wait_ms,
    )
    startup: Callable[[VersionManager], Awaitable[None]]
    if options.local is not None:
        local = options.local
        if not ((local.prediction_class and local.packages) or local.framework):
            raise ConfigError("Single-version mode needs --model-dir, --package and --prediction-class together "
                              "(or --model-dir and --framework).", hint="Or set prediction_class in [tool.cprsdk].")
        if not local.model_dir.is_dir():
            raise ConfigError(f"Model directory {local.model_dir} does not exist.",
                              hint="Point --model-dir at the folder your from_path loads.")
        manifest = Manifest(model=options.model, name=options.version, prediction_class=local.prediction_class,
                            framework=local.framework,
                            deployment_uri=str(local.model_dir), package_uris=tuple(str(p) for p in local.packages),
                            output_formatter=options.output_formatter, formatter_args=options.formatter_args)

        def resolve() -> ResolvedVersion:
            return resolve_local(local, model=options.model, name=options.version,
                                 output_formatter=options.output_formatter, formatter_args=options.formatter_args)

        async def startup(m: VersionManager) -> None:
            m.add_local(manifest, resolve)
    else:
        async def startup(m: VersionManager) -> None:
            m.start_watching(options.poll_interval)

    node_options = NodeOptions(max_body_bytes=options.max_body_bytes, access_log=options.access_log,
                               admin_token=options.admin_token, allowed_prefixes=options.allowed_prefixes,
                               health_route=options.health_route, predict_route=options.predict_route,
                               max_records=options.max_records)
    return create_app(manager, node_options, on_startup=startup)


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("cprsdk")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)


def run(options: ServeOptions, *, announce: Callable[[str], None] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code."""
    import uvicorn

    _configure_logging()
    fit_descriptor_limit(options.http_limits)
    node = build_node(options)
    config = uvicorn.Config(node, host=options.host, port=options.port, log_level="warning", access_log=False,
                            lifespan="on", timeout_graceful_shutdown=60,
                            http=limited_protocol(options.http_limits),
                            proxy_headers=False)  # the node never reads the client address; a layer less a request

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # /readyz answers 503 from now on. uvicorn would re-raise the signal after its graceful
            # shutdown (exit status -15); a drained node exits 0, so the signal is not recorded.
            node.draining = True
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True

        async def startup(self, sockets: Any = None) -> None:
            loop = type(asyncio.get_running_loop())
            logging.getLogger("cprsdk.node").info("event loop: %s.%s", loop.__module__, loop.__qualname__)
            await super().startup(sockets)
            gc.freeze()  # what start-up made (modules, the app) is never traced by the collector again

    server = _Server(config)
    if announce is not None:
        announce(f"cprsdk node on http://{options.host}:{options.port}")
    server.run()  # uvicorn's loop setup: uvloop when it is installed (asyncio.run would bypass it)
    return 0


