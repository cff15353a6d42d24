"""``cprsdk deploy`` (publish a version), ``cprsdk models`` and ``cprsdk versions`` (the registry's records)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cprsdk.cli._common import (
    Command,
    Subparsers,
    add_batching_flags,
    add_command,
    add_formatter_flags,
    add_local_files_flags,
    add_quota_flags,
    add_registry_flags,
    batching,
    err,
    formatter_fields,
    labels,
    need,
    settings_flags,
)
from cprsdk.config import Settings, load_settings
from cprsdk.errors import ConfigError

if TYPE_CHECKING:
    from cprsdk.registry.deploy import DeployRequest, DeployResult
    from cprsdk.registry.registry import ModelRecord, Registry

__all__ = ["add_parsers"]


def _registry(args: argparse.Namespace, settings: Settings | None = None) -> Registry:
    from cprsdk.registry.registry import Registry

    settings = settings or load_settings(".", {"registry": args.registry})
    return Registry(settings.registry)


# ------------------------------------------------------------------ deploy


_DEPLOY_KEYS = ("prediction_class", "framework", "model_dir", "registry", "max_code_mb", "max_model_mb",
                "max_model_files", "skip_load_check", "smoke_instances", "allow_unsafe_pickles", "isolated", "name",
                "version", "max_batch_size", "max_batch_wait_ms")


def _deploy_request(args: argparse.Namespace, settings: Settings) -> DeployRequest:
    from cprsdk.registry.deploy import DeployRequest

    return DeployRequest(
        model=args.model, version=args.version, packages=tuple(Path(p).resolve() for p in args.package or ()),
        origin=args.origin, package_uris=tuple(u for u in (args.package_uris or "").split(",") if u),
        set_default=args.set_default, description=args.description or "",
        runtime_version=args.runtime_version, python_version=args.python_version, labels=labels(args.labels),
        extra={**formatter_fields(args), **_batching_fields(settings)},
    )


def _batching_fields(settings: Settings) -> dict[str, Any]:
    size, wait = batching(settings)
    return {k: v for k, v in (("maxBatchSize", size), ("maxBatchWaitMs", wait)) if v is not None}


def _print_deployed(result: DeployResult, state: str) -> None:
    from cprsdk.cli._output import print_table
    from cprsdk.packaging.limits import format_mb

    uris = ", ".join(result.manifest.package_uris)
    print_table([[result.model, result.version, state, "yes" if result.is_default else "no",
                  f"{result.uploaded_files} files, {format_mb(result.uploaded_bytes)}",
                  f"{result.reused_files} files, {format_mb(result.reused_bytes)}", uris]],
                ["model", "version", "state", "default", "uploaded", "reused", "package uris"])
    for note in result.notes:
        err(f"note: {note}")


def _waited_state(args: argparse.Namespace, state: str) -> str:
    """The state the node at --endpoint reports for the new version, once READY or FAILED."""
    from cprsdk.node.management import read_token
    from cprsdk.registry.deploy import wait_for_version

    token = read_token(args.admin_token_file)
    node = wait_for_version(args.endpoint, args.model, args.version, token=token)
    state = node.get("state", state)
    if node.get("errorMessage"):
        err(f"ERROR: {node['errorMessage']}")
    elif state == "FAILED" and token is None:
        err(f"ERROR: {args.model}/{args.version} failed to load on the node; pass --admin-token-file FILE "
            "to see why, or read the node's log.")
    return state


def _cmd_deploy(args: argparse.Namespace) -> int:
    """check, upload and publish a version

    Publish an immutable version of a model in the registry. From a source folder (every check of `cprsdk
    package` runs first), from built sdists or wheels (--package), or from artifacts already in storage
    (--origin and --package-uris, as gcloud took them; checked on downloaded copies). Unchanged files are
    never uploaded twice; the version becomes visible only when its manifest is written, last.
    """
    from cprsdk.registry.deploy import deploy

    flags = settings_flags(args, _DEPLOY_KEYS)
    flags["version"] = None  # --version names the version to create, not the distribution
    settings = load_settings(args.src, flags)
    request = _deploy_request(args, settings)
    if args.wait and not args.endpoint:
        raise ConfigError("--wait needs --endpoint URL (the node to ask); nothing was deployed.")
    quiet = args.format == "json"
    result = deploy(settings, request, registry=_registry(args, settings),
                    step=(lambda s: None) if quiet else (lambda s: err(f"... {s}")))
    state = _waited_state(args, result.state) if args.wait else result.state
    if quiet:
        print(json.dumps({**result.to_json(), "state": state}, indent=2))
    else:
        _print_deployed(result, state)
    return 0 if state != "FAILED" else 1


def _add_deploy_parser(sub: Subparsers) -> None:
    p = add_command(sub, "deploy", _cmd_deploy)
    p.add_argument("src", nargs="?", default=".", help="project folder (default: the current folder)")
    p.add_argument("--model", required=True, help="model name (letters, digits, underscores)")
    p.add_argument("--version", required=True, help="version name (letters, digits, underscores)")
    p.add_argument("--package", action="append", metavar="SDIST|WHEEL",
                   help="deploy this built sdist or wheel (repeat)")
    p.add_argument("--origin", metavar="URI", help="model directory already in storage")
    p.add_argument("--package-uris", metavar="URI,...", help="sdists or wheels already in storage, comma separated")
    add_local_files_flags(p, model_dir="local model directory (default: model)", package=None)
    p.add_argument("--runtime-version", help="recorded in the manifest, as gcloud's flag")
    p.add_argument("--python-version", help="recorded in the manifest (default: this Python's)")
    p.add_argument("--description", help="free text recorded in the manifest")
    p.add_argument("--labels", metavar="K=V,...", help="labels recorded in the manifest")
    p.add_argument("--set-default", action="store_true", help="make this version the model's default")
    add_formatter_flags(p)
    add_batching_flags(p, version=True)
    add_quota_flags(p)
    p.add_argument("--wait", action="store_true", help="wait until the node at --endpoint reports READY or FAILED")
    p.add_argument("--endpoint", metavar="URL", help="the prediction node to ask, with --wait")
    p.add_argument("--admin-token-file", metavar="FILE",
                   help="the node's admin token, with --wait: read the version's state and errorMessage "
                        "(without it, --wait reads the state from the node's /readyz)")
    add_registry_flags(p)


# ------------------------------------------------------------------ models, versions


_VERSION_COLUMNS = (("name", "name"), ("state", "state"), ("default", "isDefault"),
                    ("prediction class", "predictionClass"), ("python", "pythonVersion"), ("created", "createTime"))
_MODEL_COLUMNS = (("name", "name"), ("default version", "defaultVersion"), ("created", "createTime"),
                  ("description", "description"))


def _print_models(args: argparse.Namespace, records: list[ModelRecord]) -> None:
    from cprsdk.cli._output import print_records

    print_records([r.to_json() for r in records], _MODEL_COLUMNS, fmt=args.format)


def _cmd_models_list(args: argparse.Namespace) -> int:
    _print_models(args, _registry(args).list_models())
    return 0


def _cmd_models_create(args: argparse.Namespace) -> int:
    _print_models(args, [_registry(args).create_model(need(args.name, "NAME"), description=args.description or "")])
    return 0


def _cmd_models_delete(args: argparse.Namespace) -> int:
    _registry(args).delete_model(need(args.name, "NAME"))
    err(f"Deleted model {args.name}.")
    return 0


def _cmd_versions_list(args: argparse.Namespace) -> int:
    from cprsdk.cli._output import print_records

    records = _registry(args).describe_versions(args.model)
    print_records(records, _VERSION_COLUMNS, fmt=args.format)
    for record in records:
        if record["state"] == "BROKEN" and args.format != "json":
            err(f"ERROR: {record['errorMessage']}")
    return 0


def _cmd_versions_describe(args: argparse.Namespace) -> int:
    record = _registry(args).describe_version(args.model, _version_arg(args))
    print(json.dumps(record, indent=2))
    return 1 if record.get("state") == "BROKEN" else 0


def _cmd_versions_set_default(args: argparse.Namespace) -> int:
    _print_models(args, [_registry(args).set_default(args.model, _version_arg(args))])
    return 0


def _cmd_versions_delete(args: argparse.Namespace) -> int:
    version = _version_arg(args)
    _registry(args).delete_version(args.model, version)
    err(f"Deleted version {version} of model {args.model}.")
    return 0


def _add_action(actions: Subparsers, name: str, func: Command, summary: str, description: str, *,
                formats: bool = True) -> argparse.ArgumentParser:
    """One action of models or versions: its registry flags, and --format where it prints records."""
    p = actions.add_parser(name, help=summary, description=description)
    add_registry_flags(p, output=formats)
    if not formats:  # taken, as before the actions had parsers of their own, but there is nothing to format
        p.add_argument("--format", choices=("table", "json"), default="table", help=argparse.SUPPRESS)
    p.set_defaults(func=func)
    return p


def _add_models_parser(sub: Subparsers) -> None:
    p = sub.add_parser("models", help="list, create or delete models", description="Models in the registry.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    _add_action(actions, "list", _cmd_models_list, "list the models",
                "List the models in the registry, with their default versions.")
    a = _add_action(actions, "create", _cmd_models_create, "create a model",
                    "Create an empty model in the registry (deploy creates one too).")
    a.add_argument("name", nargs="?", metavar="NAME", help="model name (letters, digits, underscores)")
    a.add_argument("--description", help="free text")
    a = _add_action(actions, "delete", _cmd_models_delete, "delete a model that has no versions",
                    "Delete a model from the registry; delete its versions first.", formats=False)
    a.add_argument("name", nargs="?", metavar="NAME", help="the model")


def _add_version_action(actions: Subparsers, name: str, func: Command, summary: str, description: str, *,
                        formats: bool = True) -> None:
    p = _add_action(actions, name, func, summary, description, formats=formats)
    p.add_argument("version_name", nargs="?", metavar="VERSION", help="the version")
    p.add_argument("--version", dest="version_option", metavar="VERSION",
                   help="the version, as a flag (as deploy takes it)")
    p.add_argument("--model", required=True, help="the model")


def _version_arg(args: argparse.Namespace) -> str:
    """VERSION, given as the positional or as --version (not two different ones)."""
    positional, option = args.version_name, getattr(args, "version_option", None)
    if positional and option and positional != option:
        raise ConfigError(f"Two versions given: {positional} and --version {option}.", hint="Give one.")
    return need(positional or option, "VERSION (or --version VERSION)")


def _add_versions_parser(sub: Subparsers) -> None:
    p = sub.add_parser("versions", help="list, describe, delete versions or set the default",
                       description="Versions of a model in the registry.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = _add_action(actions, "list", _cmd_versions_list, "list a model's versions",
                    "List the versions of a model, oldest first.")
    a.add_argument("--model", required=True, help="the model")
    _add_version_action(actions, "describe", _cmd_versions_describe, "print a version's manifest",
                        "Print the manifest of a version (immutable) as JSON.", formats=False)
    _add_version_action(actions, "delete", _cmd_versions_delete, "delete a version",
                        "Delete a version; the default one only when it is the model's last version.", formats=False)
    _add_version_action(actions, "set-default", _cmd_versions_set_default, "make a version the model's default",
                        "Make VERSION the default of the model, the one a request without a version gets.")


def add_parsers(sub: Subparsers) -> None:
    """``deploy``, ``models`` and ``versions``."""
    _add_deploy_parser(sub)
    _add_models_parser(sub)
    _add_versions_parser(sub)
