"""``cprsdk deploy`` (publish a version), ``cprsdk models`` and ``cprsdk versions`` (the registry's records)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from cprsdk.cli._common import Subparsers, add_formatter_flags, add_local_files_flags, add_quota_flags, \
    add_registry_flags, err, formatter_fields, labels, need, settings_flags
from cprsdk.config import Settings, load_settings
from cprsdk.errors import ConfigError

if TYPE_CHECKING:
    from cprsdk.registry.deploy import DeployRequest, DeployResult
    from cprsdk.registry.registry import Registry

__all__ = ["add_parsers"]


def _registry(args: argparse.Namespace, settings: Settings | None = None) -> Registry:
    from cprsdk.registry.registry import Registry

    settings = settings or load_settings(".", {"registry": args.registry})
    return Registry(settings.registry)


# ------------------------------------------------------------------ deploy


_DEPLOY_KEYS = ("prediction_class", "model_dir", "registry", "max_code_mb", "max_model_mb", "max_model_files",
                "allow_unsafe_pickles", "isolated", "name", "version")


def _deploy_request(args: argparse.Namespace) -> DeployRequest:
    from cprsdk.registry.deploy import DeployRequest

    return DeployRequest(
        model=args.model, version=args.version, packages=tuple(Path(p).resolve() for p in args.package or ()),
        origin=args.origin, package_uris=tuple(u for u in (args.package_uris or "").split(",") if u),
        set_default=args.set_default, description=args.description or "",
        runtime_version=args.runtime_version, python_version=args.python_version, labels=labels(args.labels),
        extra=formatter_fields(args),
    )


def _print_deployed(result: DeployResult, state: str) -> None:
    from cprsdk.cli._output import print_table
    from cprsdk.packaging.limits import format_mb

    uris = ", ".join(result.manifest["packageUris"])
    print_table([[result.model, result.version, state, "yes" if result.manifest.get("isDefault") else "no",
                  f"{result.uploaded_files} files, {format_mb(result.uploaded_bytes)}",
                  f"{result.reused_files} files, {format_mb(result.reused_bytes)}", uris]],
                ["model", "version", "state", "default", "uploaded", "reused", "package uris"])
    for note in result.notes:
        err(f"note: {note}")


def _cmd_deploy(args: argparse.Namespace) -> int:
    from cprsdk.registry.deploy import deploy, wait_for_version

    flags = settings_flags(args, _DEPLOY_KEYS)
    flags["version"] = None  # --version names the version to create, not the distribution
    settings = load_settings(args.src, flags)
    request = _deploy_request(args)
    if args.wait and not args.endpoint:
        raise ConfigError("--wait needs --endpoint URL (the node to ask); nothing was deployed.")
    quiet = args.format == "json"
    result = deploy(settings, request, registry=_registry(args, settings),
                    step=(lambda s: None) if quiet else (lambda s: err(f"... {s}")))
    state = result.state
    if args.wait:
        node = wait_for_version(args.endpoint, args.model, args.version)
        state = node.get("state", state)
        if node.get("errorMessage"):
            err(f"ERROR: {node['errorMessage']}")
    if quiet:
        print(json.dumps({**result.to_json(), "state": state}, indent=2))
    else:
        _print_deployed(result, state)
    return 0 if state != "FAILED" else 1


def _add_deploy_parser(sub: Subparsers) -> None:
    p = sub.add_parser(
        "deploy", help="check, upload and publish a version",
        description="Publish an immutable version of a model in the registry. From a source folder "
        "(every check of `cprsdk package` runs first), from built sdists (--package), or from artifacts "
        "already in storage (--origin and --package-uris, as gcloud took them). Unchanged files are never "
        "uploaded twice; the version becomes visible only when its manifest is written, last.",
    )
    p.add_argument("src", nargs="?", default=".", help="project folder (default: the current folder)")
    p.add_argument("--model", required=True, help="model name (letters, digits, underscores)")
    p.add_argument("--version", required=True, help="version name (letters, digits, underscores)")
    p.add_argument("--package", action="append", metavar="SDIST", help="deploy this built sdist (repeat)")
    p.add_argument("--origin", metavar="URI", help="model directory already in storage")
    p.add_argument("--package-uris", metavar="URI,...", help="sdists already in storage, comma separated")
    add_local_files_flags(p, model_dir="local model directory (default: model)", package=None)
    p.add_argument("--runtime-version", help="recorded in the manifest, as gcloud's flag")
    p.add_argument("--python-version", help="recorded in the manifest (default: this Python's)")
    p.add_argument("--description", help="free text recorded in the manifest")
    p.add_argument("--labels", metavar="K=V,...", help="labels recorded in the manifest")
    p.add_argument("--set-default", action="store_true", help="make this version the model's default")
    add_formatter_flags(p)
    add_quota_flags(p)
    p.add_argument("--wait", action="store_true", help="wait until the node at --endpoint reports READY or FAILED")
    p.add_argument("--endpoint", metavar="URL", help="the prediction node to ask, with --wait")
    add_registry_flags(p)
    p.set_defaults(func=_cmd_deploy)


# ------------------------------------------------------------------ models, versions


_VERSION_COLUMNS = (("name", "name"), ("default", "isDefault"), ("prediction class", "predictionClass"),
                    ("python", "pythonVersion"), ("created", "createTime"))
_MODEL_COLUMNS = (("name", "name"), ("default version", "defaultVersion"), ("created", "createTime"),
                  ("description", "description"))


def _cmd_models(args: argparse.Namespace) -> int:
    from cprsdk.cli._output import print_records

    registry = _registry(args)
    if args.action == "list":
        print_records([m.to_json() for m in registry.list_models()], _MODEL_COLUMNS, fmt=args.format)
    elif args.action == "create":
        print_records([registry.create_model(need(args.name, "NAME"), description=args.description or "").to_json()],
                      _MODEL_COLUMNS, fmt=args.format)
    else:
        registry.delete_model(need(args.name, "NAME"))
        err(f"Deleted model {args.name}.")
    return 0


def _cmd_versions(args: argparse.Namespace) -> int:
    from cprsdk.cli._output import print_records

    registry = _registry(args)
    if args.action == "list":
        print_records(registry.list_versions(args.model), _VERSION_COLUMNS, fmt=args.format)
    elif args.action == "describe":
        print(json.dumps(registry.get_version(args.model, need(args.version_name, "VERSION")), indent=2))
    elif args.action == "set-default":
        record = registry.set_default(args.model, need(args.version_name, "VERSION"))
        print_records([record.to_json()], _MODEL_COLUMNS, fmt=args.format)
    else:
        registry.delete_version(args.model, need(args.version_name, "VERSION"))
        err(f"Deleted version {args.version_name} of model {args.model}.")
    return 0


def _add_models_parser(sub: Subparsers) -> None:
    p = sub.add_parser("models", help="list, create or delete models", description="Models in the registry.")
    p.add_argument("action", choices=("list", "create", "delete"))
    p.add_argument("name", nargs="?", help="model name, for create and delete")
    p.add_argument("--description", help="with create: free text")
    add_registry_flags(p)
    p.set_defaults(func=_cmd_models)


def _add_versions_parser(sub: Subparsers) -> None:
    p = sub.add_parser("versions", help="list, describe, delete versions or set the default",
                       description="Versions of a model in the registry.")
    p.add_argument("action", choices=("list", "describe", "delete", "set-default"))
    p.add_argument("version_name", nargs="?", metavar="VERSION", help="the version, except for list")
    p.add_argument("--model", required=True, help="the model")
    add_registry_flags(p)
    p.set_defaults(func=_cmd_versions)


def add_parsers(sub: Subparsers) -> None:
    """``deploy``, ``models`` and ``versions``."""
    _add_deploy_parser(sub)
    _add_models_parser(sub)
    _add_versions_parser(sub)
