"""What several commands share: flag groups, and the small helpers that read what those flags hold."""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeAlias

from cprsdk.config import Settings
from cprsdk.errors import ConfigError

__all__ = [
    "Command", "Subparsers", "add_batching_flags", "add_command", "add_format_flag", "add_formatter_flags",
    "add_input_flags", "add_local_files_flags", "add_quota_flags", "add_registry_flags", "batching", "err",
    "formatter", "formatter_fields", "labels", "need", "read_bytes", "settings_flags",
]

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Command: TypeAlias = Callable[[argparse.Namespace], int]


def err(text: str) -> None:
    """One line on stderr, where everything for people goes (stdout is for results)."""
    print(text, file=sys.stderr, flush=True)


def need(value: str | None, what: str) -> str:
    if not value:
        raise ConfigError(f"This action needs {what}.")
    return value


def read_bytes(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror}.") from None


def settings_flags(args: argparse.Namespace, keys: Sequence[str]) -> dict[str, Any]:
    """The flags that are also settings, for :func:`cprsdk.config.load_settings` (None: not given)."""
    return {key: getattr(args, key, None) for key in keys}


def labels(text: str | None) -> dict[str, str]:
    """``--labels k=v,k2=v2`` as a dict."""
    if not text:
        return {}
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    if any(len(p) != 2 or not p[0].strip() for p in pairs):
        raise ConfigError(f"--labels must look like key=value,key2=value2, got {text!r}.")
    return {k.strip(): v.strip() for k, v in pairs}


def formatter(args: argparse.Namespace) -> tuple[str | None, dict[str, Any] | None]:
    """``--output-formatter`` and ``--formatter-args`` (parsed and checked)."""
    from cprsdk.runtime.formats import validate_formatter

    name = getattr(args, "output_formatter", None)
    text = getattr(args, "formatter_args", None)
    values = None
    if text is not None:
        try:
            values = json.loads(text)
        except ValueError:
            raise ConfigError(f"--formatter-args must be a JSON object, got {text!r}.") from None
        if not isinstance(values, dict):
            raise ConfigError(f"--formatter-args must be a JSON object, got {text!r}.")
    validate_formatter(name, values)
    return name, values


def formatter_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The formatter flags as the manifest fields a version carries."""
    name, values = formatter(args)
    return {"outputFormatter": name, "formatterArgs": values or {}} if name else {}


# ------------------------------------------------------------------ commands and flag groups


def add_command(sub: Subparsers, name: str, func: Command, **kwargs: Any) -> argparse.ArgumentParser:
    """The parser of command ``name``, run by ``func``: its ``help`` in the command list is the first
    paragraph of ``func``'s docstring and its ``--help`` description the rest, so each command's text sits
    with its code."""
    summary, _, details = inspect.cleandoc(func.__doc__ or "").partition("\n\n")
    p = sub.add_parser(name, help=" ".join(summary.split()), description=" ".join(details.split()) or None,
                       **kwargs)
    p.set_defaults(func=func)
    return p


def add_format_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format")


def add_registry_flags(p: argparse.ArgumentParser, *, role: str = "registry root", output: bool = True) -> None:
    """``--registry`` (its help starts with ``role``) and, with ``output``, ``--format``."""
    p.add_argument("--registry", metavar="URI",
                   help=f"{role}: a folder, file://, gs://, s3://, memory:// (default: the embedded one)")
    if output:
        add_format_flag(p)


def add_formatter_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output-formatter", choices=("raw", "classification"),
                   help="canned output formatter for hook-style modules")
    p.add_argument("--formatter-args", metavar="JSON",
                   help='formatter arguments, e.g. \'{"num_preds": 3, "label": true}\'')


def add_batching_flags(p: argparse.ArgumentParser, *, version: bool) -> None:
    """``--max-batch-size`` and ``--max-batch-wait-ms``: of one version (``deploy``) or the node's default."""
    if version:
        size = ("default: unset, so the node's cprsdk serve --max-batch-size applies; 1 turns batching off "
                "for this version")
        wait = "default: unset, the node's --max-batch-wait-ms"
        role = "of this version"
    else:
        size, wait, role = "default: 1, off", "default: 0; an idle worker never waits", "for versions that set none"
    p.add_argument("--max-batch-size", type=int, metavar="N",
                   help=f"dynamic batching {role}: at most N instances per predict call; requests with equal "
                        f"keyword arguments are merged while every worker is busy ({size}; config key "
                        "max_batch_size)")
    p.add_argument("--max-batch-wait-ms", type=float, metavar="MS",
                   help=f"dynamic batching {role}: how long requests are collected while every worker is busy "
                        f"({wait}; config key max_batch_wait_ms)")


def batching(settings: Settings) -> tuple[int | None, float | None]:
    """The batching settings (flags, ``CPRSDK_MAX_BATCH_SIZE``..., the project file), checked (None: not set)."""
    from cprsdk.registry.manifest import batching_settings

    def name(key: str) -> str:
        origin = settings.sources.get(key, "default")
        if origin == "flag":
            return "--" + key.replace("_", "-")
        return f"CPRSDK_{key.upper()}" if origin == "env" else f"{key} in {origin}"

    try:
        return batching_settings(settings.max_batch_size, settings.max_batch_wait_ms,
                                 size_name=name("max_batch_size"), wait_name=name("max_batch_wait_ms"))
    except ValueError as exc:
        raise ConfigError(str(exc), hint="Run the command again with valid values (docs/node.md, "
                                         "Dynamic batching).") from None


def add_input_flags(p: argparse.ArgumentParser) -> None:
    """The gcloud-style request flags: exactly one input, and what goes with it."""
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--json-instances", metavar="FILE", help="one JSON instance per line ('-' for stdin)")
    group.add_argument("--json-request", metavar="FILE", help='a whole request body {"instances": [...], ...}')
    group.add_argument("--text-instances", metavar="FILE", help="one string instance per line")
    group.add_argument("--raw", metavar="FILE", help="a raw body (an image, CSV ...) as :rawPredict takes it")
    p.add_argument("--content-type", default="application/json", help="with --raw: its media type")
    p.add_argument("--accept", help="with --raw: the media type wanted back")
    p.add_argument("--kwargs", metavar="JSON", help="extra request fields passed to predict, as a JSON object")


def add_quota_flags(p: argparse.ArgumentParser) -> None:
    """The checks of ``package`` (and of ``deploy``, which packages first)."""
    p.add_argument("--max-code-mb", type=float, metavar="MB", help="code quota (default: 250)")
    p.add_argument("--max-model-mb", type=float, metavar="MB", help="model directory quota (default: 250)")
    p.add_argument("--max-model-files", type=int, metavar="N", help="model file-count quota (default: 1000)")
    p.add_argument("--allow-unsafe-pickles", action="store_true", default=None,
                   help="accept pickles that reference dangerous callables (only for files you trust)")
    p.add_argument("--isolated", action="store_true", default=None,
                   help="build in an isolated environment (needs a package index)")
    p.add_argument("--skip-load-check", action="store_true", default=None,
                   help="do not load the version before upload (for models too big to load here)")
    p.add_argument("--json-instances", dest="smoke_instances", metavar="FILE",
                   help="JSON lines: run one smoke prediction on them; the answer must be JSON")


def add_local_files_flags(p: argparse.ArgumentParser, *, model_dir: str, package: str | None,
                          prediction_class: str = "e.g. predictor.MyPredictor") -> None:
    """``--model-dir``, ``--package`` (unless ``package`` is None) and ``--prediction-class``, with these helps."""
    p.add_argument("--model-dir", metavar="DIR", help=model_dir)
    if package is not None:
        p.add_argument("--package", action="append", metavar="SDIST_OR_SRC", help=package)
    p.add_argument("--prediction-class", metavar="MOD.CLS", help=prediction_class)
    p.add_argument("--framework", choices=("scikit-learn", "xgboost", "tensorflow"),
                   help="no prediction class: serve model.joblib, model.pkl or model.bst as AI Platform's "
                        "prebuilt runtime did")
