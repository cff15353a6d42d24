"""The ``cprsdk`` command: argument parsing only; the work lives in the library.

``main(argv) -> int``; one small function per subcommand; one error translator turns every
:class:`CprError` into an ``ERROR`` line (and a ``TIP`` line) on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cprsdk import __version__
from cprsdk.config import load_settings
from cprsdk.errors import ConfigError, CprError

__all__ = ["main"]

_EPILOG = """\
the usual path:
  cprsdk init mymodel --template sklearn      a working project
  cd mymodel && python train.py               writes model/
  cprsdk local predict --json-instances sample.jsonl
  cprsdk package                              dist/<name>-<version>.tar.gz, checked

Every flag can also come from [tool.cprsdk] in pyproject.toml (or cprsdk.toml) and from
CPRSDK_<KEY> variables; a flag wins over a variable, a variable over the file.
"""


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _translated_errors(code: list[int]) -> Iterator[None]:
    try:
        yield
    except CprError as exc:
        _err(f"ERROR: {exc.message}")
        if exc.hint:
            _err(f"TIP: {exc.hint}")
        code[0] = 1
    except KeyboardInterrupt:
        _err("Interrupted.")
        code[0] = 130


# ------------------------------------------------------------------ init


def _cmd_init(args: argparse.Namespace) -> int:
    from cprsdk.packaging.scaffold import create_project

    dest = Path(args.dir)
    files = create_project(dest, args.template)
    _err(f"Created {dest}/ from the {args.template} template ({len(files)} files). Next:")
    _err(f"  cd {dest}")
    if args.template == "keras":
        _err("  pip install 'cprsdk[keras]'")
    _err("  python train.py                                 # writes model/ and sample.jsonl")
    _err("  cprsdk local predict --json-instances sample.jsonl")
    _err("  cprsdk package")
    _err(f"  (more, for this template: {dest}/README.md)")
    print(dest)
    return 0


# ------------------------------------------------------------------ package


def _settings_flags(args: argparse.Namespace, keys: Sequence[str]) -> dict[str, Any]:
    return {key: getattr(args, key, None) for key in keys}


_PACKAGE_KEYS = ("name", "version", "prediction_class", "model_dir", "out", "max_code_mb", "max_model_mb",
                 "max_model_files", "allow_unsafe_pickles", "isolated")


def _cmd_package(args: argparse.Namespace) -> int:
    from cprsdk.packaging.packager import package

    settings = load_settings(args.src, _settings_flags(args, _PACKAGE_KEYS))
    result = package(settings, step=(lambda s: _err(f"... {s}")) if not args.quiet else (lambda s: None))
    report = result.to_json()
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.format == "json":
        print(json.dumps(report, indent=2))
        return 0
    if not args.quiet:
        for check in result.checks:
            _err(f"  ok  {check.name:<18} {check.detail}")
        _err(f"sha256 {result.sha256}  ({result.bytes} bytes)")
    print(result.sdist)
    return 0


# ------------------------------------------------------------------ local predict


def _cmd_local_predict(args: argparse.Namespace) -> int:
    from cprsdk.runtime.local import local_predict, read_request

    from cprsdk.errors import error_body

    flags = {"model_dir": args.model_dir, "packages": args.package, "prediction_class": args.prediction_class}
    try:
        settings = load_settings(".", flags)
        formatter, formatter_args = _formatter(args)
        if args.raw is not None:
            result = local_predict(settings, None, raw=_read_bytes(args.raw), content_type=args.content_type,
                                   accept=args.accept or "", formatter=formatter, formatter_args=formatter_args)
        else:
            body = read_request(json_instances=args.json_instances, json_request=args.json_request,
                                text_instances=args.text_instances, kwargs=args.kwargs)
            result = local_predict(settings, body, formatter=formatter, formatter_args=formatter_args)
    except CprError as exc:  # the envelope on stdout too, as for a predictor's own errors
        print(json.dumps(error_body(exc.status_code, str(exc))))
        raise
    if result.raw is not None:
        if result.log and args.verbose:
            _err(result.log.rstrip())
        _err(f"Content-Type: {result.content_type}")
        sys.stdout.buffer.write(result.raw)
        sys.stdout.flush()
        return 0
    if result.log and (args.verbose or not result.ok):
        _err(result.log.rstrip())
    if args.timings:
        _err("timings: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in result.timings.items()))
    print(json.dumps(result.body))
    return 0 if result.ok else 1


# ------------------------------------------------------------------ registry: deploy, models, versions


def _registry(args: argparse.Namespace, settings: Any = None) -> Any:
    from cprsdk.registry.registry import Registry

    settings = settings or load_settings(".", {"registry": args.registry})
    return Registry(settings.registry)


def _labels(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    if any(len(p) != 2 or not p[0].strip() for p in pairs):
        raise ConfigError(f"--labels must look like key=value,key2=value2, got {text!r}.")
    return {k.strip(): v.strip() for k, v in pairs}


_DEPLOY_KEYS = ("prediction_class", "model_dir", "registry", "max_code_mb", "max_model_mb", "max_model_files",
                "allow_unsafe_pickles", "isolated", "name", "version")


def _formatter_fields(args: argparse.Namespace) -> dict[str, Any]:
    name, values = _formatter(args)
    return {"outputFormatter": name, "formatterArgs": values or {}} if name else {}


def _cmd_deploy(args: argparse.Namespace) -> int:
    from cprsdk.registry.deploy import DeployRequest, deploy, wait_for_version

    flags = _settings_flags(args, _DEPLOY_KEYS)
    flags["version"] = None  # --version names the version to create, not the distribution
    settings = load_settings(args.src, flags)
    request = DeployRequest(
        model=args.model, version=args.version, packages=tuple(Path(p).resolve() for p in args.package or ()),
        origin=args.origin, package_uris=tuple(u for u in (args.package_uris or "").split(",") if u),
        set_default=args.set_default, description=args.description or "",
        runtime_version=args.runtime_version, python_version=args.python_version, labels=_labels(args.labels),
        extra=_formatter_fields(args),
    )
    if args.wait and not args.endpoint:
        raise ConfigError("--wait needs --endpoint URL (the node to ask); nothing was deployed.")
    registry = _registry(args, settings)
    quiet = args.format == "json"
    result = deploy(settings, request, registry=registry, step=(lambda s: None) if quiet else (lambda s: _err(f"... {s}")))
    state = result.state
    if args.wait:
        node = wait_for_version(args.endpoint, args.model, args.version)
        state = node.get("state", state)
        if node.get("errorMessage"):
            _err(f"ERROR: {node['errorMessage']}")
    if quiet:
        print(json.dumps({**result.to_json(), "state": state}, indent=2))
    else:
        from cprsdk.packaging.limits import format_mb
        from cprsdk.cli._output import print_table

        uris = ", ".join(result.manifest.package_uris)
        print_table([[result.model, result.version, state, "yes" if result.is_default else "no",
                      f"{result.uploaded_files} files, {format_mb(result.uploaded_bytes)}",
                      f"{result.reused_files} files, {format_mb(result.reused_bytes)}", uris]],
                    ["model", "version", "state", "default", "uploaded", "reused", "package uris"])
        for note in result.notes:
            _err(f"note: {note}")
    return 0 if state != "FAILED" else 1


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
        print_records([registry.create_model(_need(args.name, "NAME"), description=args.description or "").to_json()],
                      _MODEL_COLUMNS, fmt=args.format)
    else:
        registry.delete_model(_need(args.name, "NAME"))
        _err(f"Deleted model {args.name}.")
    return 0


def _need(value: str | None, what: str) -> str:
    if not value:
        raise ConfigError(f"This action needs {what}.")
    return value


def _cmd_versions(args: argparse.Namespace) -> int:
    from cprsdk.cli._output import print_records

    registry = _registry(args)
    if args.action == "list":
        print_records(registry.describe_versions(args.model), _VERSION_COLUMNS, fmt=args.format)
    elif args.action == "describe":
        print(json.dumps(registry.describe_version(args.model, _need(args.version_name, "VERSION")), indent=2))
    elif args.action == "set-default":
        record = registry.set_default(args.model, _need(args.version_name, "VERSION"))
        print_records([record.to_json()], _MODEL_COLUMNS, fmt=args.format)
    else:
        registry.delete_version(args.model, _need(args.version_name, "VERSION"))
        _err(f"Deleted version {args.version_name} of model {args.model}.")
    return 0


# ------------------------------------------------------------------ serve, predict


def _env_port() -> int | None:
    import os

    for name in ("AIP_HTTP_PORT", "SAGEMAKER_BIND_TO_PORT"):
        if os.environ.get(name):
            try:
                return int(os.environ[name])
            except ValueError:
                raise ConfigError(f"{name} must be a port number, got {os.environ[name]!r}.") from None
    return None


def _cmd_serve(args: argparse.Namespace) -> int:
    import dataclasses
    import os
    import tempfile

    from cprsdk.node.management import read_token
    from cprsdk.node.server import ServeOptions, run
    from cprsdk.runtime.resolved import download_model_dir

    flags = {"registry": args.registry, "model_dir": args.model_dir, "packages": args.package,
             "prediction_class": args.prediction_class}
    settings = load_settings(".", flags)
    formatter, formatter_args = _formatter(args)
    with tempfile.TemporaryDirectory(prefix="cprsdk-serve-") as tmp:
        local = None
        if os.environ.get("AIP_STORAGE_URI"):  # a Vertex AI container: the model comes from storage
            model_dir = download_model_dir(os.environ["AIP_STORAGE_URI"], Path(tmp, "model"))
            local = dataclasses.replace(settings, model_dir=model_dir)
        elif args.model_dir is not None:
            local = settings
        options = ServeOptions(
            host=args.host or ("0.0.0.0" if _env_port() else "127.0.0.1"),  # a container is reached from outside
            port=args.port or _env_port() or 8080, workers=args.workers,
            predict_timeout=args.predict_timeout, load_timeout=args.load_timeout,
            max_body_bytes=int(args.max_body_mb * 1_000_000), access_log=args.access_log,
            poll_interval=args.poll_interval, registry=settings.registry, local=local,
            model=args.model, version=args.version_name, output_formatter=formatter,
            formatter_args=formatter_args or {},
            health_route=os.environ.get("AIP_HEALTH_ROUTE"), predict_route=os.environ.get("AIP_PREDICT_ROUTE"),
            admin_token=read_token(args.admin_token_file), allowed_prefixes=tuple(args.allow_uri_prefix or ()),
        )
        return run(options, announce=_err)


def _cmd_predict(args: argparse.Namespace) -> int:
    from cprsdk.node.client import NodeClient
    from cprsdk.runtime.local import read_request

    client = NodeClient(args.endpoint)
    if args.raw is not None:
        status, data, content_type = client.raw_predict(args.model, _read_bytes(args.raw), args.content_type,
                                                        version=args.version_name, accept=args.accept)
        _err(f"Content-Type: {content_type}")
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return 0 if status < 300 else 1
    body = read_request(json_instances=args.json_instances, json_request=args.json_request,
                        text_instances=args.text_instances, kwargs=args.kwargs)
    response = client.predict_body(args.model, body, args.version_name)
    print(json.dumps(response.body))
    return 0 if response.ok else 1


def _read_bytes(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror}.") from None


def _formatter(args: argparse.Namespace) -> tuple[str | None, dict[str, Any] | None]:
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


def _add_formatter_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output-formatter", choices=("raw", "classification"),
                   help="canned output formatter for hook-style modules")
    p.add_argument("--formatter-args", metavar="JSON",
                   help='formatter arguments, e.g. \'{"num_preds": 3, "label": true}\'')


# ------------------------------------------------------------------ batch


def _batch_version(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The resolved version (from the registry or local files) and how people name it."""
    from cprsdk.runtime.resolved import resolve_local, resolve_registry_version

    if args.model:
        from cprsdk.registry.registry import Registry

        settings = load_settings(".", {"registry": args.registry})
        registry = Registry(settings.registry)
        version = resolve_registry_version(registry, args.model, args.version_name)
        return version, {"model": version.model, "version": version.name, "registry": registry.uri}
    settings = load_settings(".", {"model_dir": args.model_dir, "packages": args.package,
                                   "prediction_class": args.prediction_class})
    if not settings.prediction_class or not settings.model_dir.is_dir():
        raise ConfigError("Name a deployed model (--model M) or local files (--model-dir, --package, "
                          "--prediction-class).")
    return resolve_local(settings), {"model_dir": str(settings.model_dir)}


def _progress(done: int, total: int) -> None:
    if sys.stderr.isatty():
        width = 30
        filled = width * done // max(total, 1)
        end = "\n" if done == total else ""
        print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} shards", end=end, file=sys.stderr, flush=True)


def _absolute(uri: str) -> str:
    import os

    return uri if "://" in uri else os.path.abspath(uri)


def _cmd_batch(args: argparse.Namespace) -> int:
    from cprsdk.batch import index, jobs

    if args.action == "list":
        from cprsdk.cli._output import print_records

        print_records(index.list_jobs(), (("job", "job"), ("state", "state"), ("succeeded", "succeeded"),
                                         ("failed", "failed"), ("output", "output")), fmt=args.format)
        return 0
    if args.action in ("status", "stop", "results"):
        job = _need(args.job, "JOB")
        if args.action == "status":
            print(json.dumps(index.job_status(job), indent=2))
        elif args.action == "stop":
            index.stop_job(job)
            _err(f"Asked {job} to stop after the shards in flight; rerun its command to resume.")
        else:
            sys.stdout.buffer.write(index.results_csv(job))
        return 0
    if not args.input or not args.output:
        raise ConfigError("batch predict needs --input URI... and --output URI.")
    if not 0 <= args.max_error_rate <= 1:
        raise ConfigError(f"--max-error-rate is a fraction from 0 to 1 (0.01 = 1%), got {args.max_error_rate}.")
    version, source = _batch_version(args)
    spec = jobs.JobSpec(
        inputs=tuple(args.input), output=_absolute(args.output).rstrip("/"), version=version,
        data_format=args.data_format, batch_size=args.batch_size,
        workers=args.workers, shard_size=args.shard_size, max_error_rate=args.max_error_rate,
        key_field=args.key_field, engine=args.engine, scheduler=args.scheduler, source=source)
    index.remember(jobs.job_id(spec.output), spec.output)
    _err(f"job {jobs.job_id(spec.output)}: writing to {spec.output}")
    summary = jobs.run_job(spec, progress=_progress)
    print(json.dumps(summary.to_json(), indent=2))
    if summary.message:
        _err(("ERROR: " if summary.state == "FAILED" else "note: ") + summary.message)
    return 0 if summary.state == "SUCCEEDED" else 1


def _add_batch_parser(sub: Any) -> None:
    p = sub.add_parser(
        "batch", help="batch prediction over datasets",
        description="`batch predict` scores every record of the inputs (JSON lines, CSV with a header, or "
        "whole files) and writes sharded predictions, errors, CSV views and a summary to --output; every "
        "record ends as a prediction or an error line. Running the same command again with the same "
        "--output resumes the job. `batch status|stop|results JOB` and `batch list` follow jobs.",
    )
    p.add_argument("action", choices=("predict", "status", "list", "stop", "results"))
    p.add_argument("job", nargs="?", help="the job id, for status, stop and results")
    p.add_argument("--input", action="append", metavar="URI", help="input files, folders or globs (repeat)")
    p.add_argument("--output", metavar="URI", help="where the job writes (it is also the job's identity)")
    p.add_argument("--data-format", choices=("jsonl", "csv", "files"), default="jsonl", help="(default: jsonl)")
    p.add_argument("--model", help="a deployed model (its default version unless --version)")
    p.add_argument("--version", dest="version_name", help="the deployed version")
    p.add_argument("--registry", metavar="URI", help="the registry of --model")
    p.add_argument("--model-dir", metavar="DIR", help="local files instead of --model: the model directory")
    p.add_argument("--package", action="append", metavar="SDIST_OR_SRC", help="local files: packages")
    p.add_argument("--prediction-class", metavar="MOD.CLS", help="local files: the class")
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="instances per predict call (default: 64)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes (default: 1)")
    p.add_argument("--shard-size", type=int, default=1000, metavar="N", help="records per output shard (default: 1000)")
    p.add_argument("--max-error-rate", type=float, default=1.0, metavar="F",
                   help="fail the job when more than this fraction of records fails (0.01 = 1%%; default: 1)")
    p.add_argument("--key-field", metavar="NAME", help="write this field of each record instead of the instance")
    p.add_argument("--engine", choices=("local", "dask"), default="local", help="(default: local)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="with --engine dask: the scheduler (default: a local cluster)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format of list")
    p.set_defaults(func=_cmd_batch)


# ------------------------------------------------------------------ parser


def _add_package_parser(sub: Any) -> None:
    p = sub.add_parser(
        "package", help="build a checked, reproducible sdist of your predictor",
        description="Build SRC into a reproducible sdist and prove it will load: model and code quotas, "
        "the prediction class imported from the sdist alone in a clean interpreter, and every pickle in "
        "the model directory scanned (without running it) for modules the package lacks, __main__ "
        "classes and dangerous callables. Prints the sdist's path on stdout.",
    )
    p.add_argument("src", nargs="?", default=".", help="project folder (default: the current folder)")
    p.add_argument("--prediction-class", metavar="MOD.CLS", help="e.g. predictor.MyPredictor")
    p.add_argument("--model-dir", metavar="DIR", help="model directory to check (default: model)")
    p.add_argument("--out", metavar="DIR", help="where to write the sdist (default: dist)")
    p.add_argument("--name", help="distribution name, for a bare folder of modules (default: folder name)")
    p.add_argument("--version", help="distribution version, for a bare folder of modules (default: 0.1)")
    p.add_argument("--report", metavar="PATH", help="also write the JSON report to PATH")
    p.add_argument("--max-code-mb", type=float, metavar="MB", help="code quota (default: 250)")
    p.add_argument("--max-model-mb", type=float, metavar="MB", help="model directory quota (default: 250)")
    p.add_argument("--max-model-files", type=int, metavar="N", help="model file-count quota (default: 1000)")
    p.add_argument("--allow-unsafe-pickles", action="store_true", default=None,
                   help="accept pickles that reference dangerous callables (only for files you trust)")
    p.add_argument("--isolated", action="store_true", default=None,
                   help="build in an isolated environment (needs a package index)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the sdist path")
    p.set_defaults(func=_cmd_package)


def _add_local_parser(sub: Any) -> None:
    local = sub.add_parser("local", help="run a predictor on this machine, as the node runs it")
    local_sub = local.add_subparsers(dest="local_command", metavar="COMMAND", required=True)
    p = local_sub.add_parser(
        "predict", help="predict one request with the packaged predictor",
        description="Install the packages the way a prediction node does, then run from_path and predict "
        "in a fresh interpreter. Prints the response body ({\"predictions\": [...]}) on stdout; on failure "
        "prints {\"error\": {...}} and exits 1.",
    )
    p.add_argument("--model-dir", metavar="DIR", help="local model directory (default: model)")
    p.add_argument("--package", action="append", metavar="SDIST_OR_SRC",
                   help="an sdist or source folder; repeat for several (default: the current folder)")
    p.add_argument("--prediction-class", metavar="MOD.CLS", help="e.g. predictor.MyPredictor")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--json-instances", metavar="FILE", help="one JSON instance per line ('-' for stdin)")
    group.add_argument("--json-request", metavar="FILE", help='a whole request body {"instances": [...], ...}')
    group.add_argument("--text-instances", metavar="FILE", help="one string instance per line")
    group.add_argument("--raw", metavar="FILE", help="a raw body (an image, CSV ...) as :rawPredict takes it")
    p.add_argument("--content-type", default="application/json", help="with --raw: its media type")
    p.add_argument("--accept", help="with --raw: the media type wanted back")
    p.add_argument("--kwargs", metavar="JSON", help="extra request fields passed to predict, as a JSON object")
    _add_formatter_flags(p)
    p.add_argument("--timings", action="store_true", help="print where the time went, on stderr")
    p.add_argument("-v", "--verbose", action="store_true", help="show the predictor's own output")
    p.set_defaults(func=_cmd_local_predict)


def _add_registry_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--registry", metavar="URI",
                   help="registry root: a folder, file://, gs://, s3://, memory:// (default: the embedded one)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format")


def _add_registry_parsers(sub: Any) -> None:
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
    p.add_argument("--prediction-class", metavar="MOD.CLS", help="e.g. predictor.MyPredictor")
    p.add_argument("--model-dir", metavar="DIR", help="local model directory (default: model)")
    p.add_argument("--runtime-version", help="recorded in the manifest, as gcloud's flag")
    p.add_argument("--python-version", help="recorded in the manifest (default: this Python's)")
    p.add_argument("--description", help="free text recorded in the manifest")
    p.add_argument("--labels", metavar="K=V,...", help="labels recorded in the manifest")
    p.add_argument("--set-default", action="store_true", help="make this version the model's default")
    _add_formatter_flags(p)
    p.add_argument("--max-code-mb", type=float, metavar="MB", help="code quota (default: 250)")
    p.add_argument("--max-model-mb", type=float, metavar="MB", help="model directory quota (default: 250)")
    p.add_argument("--max-model-files", type=int, metavar="N", help="model file-count quota (default: 1000)")
    p.add_argument("--allow-unsafe-pickles", action="store_true", default=None,
                   help="accept pickles that reference dangerous callables (only for files you trust)")
    p.add_argument("--isolated", action="store_true", default=None, help="build in an isolated environment")
    p.add_argument("--wait", action="store_true", help="wait until the node at --endpoint reports READY or FAILED")
    p.add_argument("--endpoint", metavar="URL", help="the prediction node to ask, with --wait")
    _add_registry_flags(p)
    p.set_defaults(func=_cmd_deploy)

    p = sub.add_parser("models", help="list, create or delete models", description="Models in the registry.")
    p.add_argument("action", choices=("list", "create", "delete"))
    p.add_argument("name", nargs="?", help="model name, for create and delete")
    p.add_argument("--description", help="with create: free text")
    _add_registry_flags(p)
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("versions", help="list, describe, delete versions or set the default",
                       description="Versions of a model in the registry.")
    p.add_argument("action", choices=("list", "describe", "delete", "set-default"))
    p.add_argument("version_name", nargs="?", metavar="VERSION", help="the version, except for list")
    p.add_argument("--model", required=True, help="the model")
    _add_registry_flags(p)
    p.set_defaults(func=_cmd_versions)


def _add_node_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "serve", help="run a prediction node",
        description="Serve every version in the registry (watched for changes), or one version from local "
        "files with --model-dir, --package and --prediction-class. Each version runs in its own worker "
        "processes. Routes: AI Platform v1 predict and versions/models reads, Vertex AI endpoints, KServe V1, "
        "/healthz, /readyz, /metrics. AIP_HTTP_PORT, AIP_HEALTH_ROUTE, AIP_PREDICT_ROUTE and AIP_STORAGE_URI "
        "make it a Vertex AI custom container. SIGTERM drains and exits 0.",
    )
    p.add_argument("--registry", metavar="URI", help="registry to serve (default: the embedded one)")
    p.add_argument("--host", help="address to bind (default: 127.0.0.1; 0.0.0.0 when AIP_HTTP_PORT is set)")
    p.add_argument("--port", type=int, help="port (default: $AIP_HTTP_PORT, $SAGEMAKER_BIND_TO_PORT, else 8080)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes per version (default: 1)")
    p.add_argument("--predict-timeout", type=float, default=60.0, metavar="S",
                   help="seconds a prediction may take; past it: 504 and the worker is replaced (default: 60)")
    p.add_argument("--load-timeout", type=float, default=600.0, metavar="S",
                   help="seconds from_path may take; past it the version FAILS (default: 600)")
    p.add_argument("--max-body-mb", type=float, default=1.5, metavar="MB", help="request body limit (default: 1.5)")
    p.add_argument("--poll-interval", type=float, default=2.0, metavar="S", help="registry poll (default: 2)")
    p.add_argument("--access-log", action="store_true", help="log one JSON line per request")
    p.add_argument("--admin-token-file", metavar="FILE",
                   help="turn on the management routes (models/versions create, delete, setDefault) for "
                   "requests bearing this token")
    p.add_argument("--allow-uri-prefix", action="append", metavar="PREFIX",
                   help="storage prefix the management routes may point a version at (repeat)")
    p.add_argument("--model-dir", metavar="DIR", help="single-version mode: the model directory")
    p.add_argument("--package", action="append", metavar="SDIST_OR_SRC", help="single-version mode: packages")
    p.add_argument("--prediction-class", metavar="MOD.CLS", help="single-version mode: the class")
    p.add_argument("--model", default="default", help="single-version mode: model name (default: default)")
    p.add_argument("--version", dest="version_name", default="v1", help="single-version mode: version (default: v1)")
    _add_formatter_flags(p)
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("predict", help="send a prediction request to a node",
                       description="POST to the node's AI Platform predict route and print the response body.")
    p.add_argument("--endpoint", default="http://127.0.0.1:8080", metavar="URL", help="the node")
    p.add_argument("--model", required=True, help="the model")
    p.add_argument("--version", dest="version_name", help="the version (default: the model's default)")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--json-instances", metavar="FILE", help="one JSON instance per line ('-' for stdin)")
    group.add_argument("--json-request", metavar="FILE", help='a whole request body {"instances": [...], ...}')
    group.add_argument("--text-instances", metavar="FILE", help="one string instance per line")
    group.add_argument("--raw", metavar="FILE", help="a raw body, sent to :rawPredict")
    p.add_argument("--content-type", default="application/json", help="with --raw: its media type")
    p.add_argument("--accept", help="with --raw: the media type wanted back")
    p.add_argument("--kwargs", metavar="JSON", help="extra request fields, as a JSON object")
    p.set_defaults(func=_cmd_predict)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cprsdk",
        description="Package, check and run custom prediction routines "
        "(classes with from_path(model_dir) and predict(instances, **kwargs)).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cprsdk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = sub.add_parser("init", help="create a working project from a template",
                       description="Create DIR with a train script, a predictor (a class, a SageMaker "
                       "inference module, hook functions or a Vertex class, by template), a test, a README "
                       "with the commands, and [tool.cprsdk] settings.")
    p.add_argument("dir", help="the new project folder")
    from cprsdk.packaging.templating import available_templates

    p.add_argument("--template", default="sklearn",
                   help=f"one of {', '.join(available_templates())} (default: sklearn)")
    p.set_defaults(func=_cmd_init)
    _add_package_parser(sub)
    _add_local_parser(sub)
    _add_registry_parsers(sub)
    _add_node_parsers(sub)
    _add_batch_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cprsdk`` command; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    code = [0]
    with _translated_errors(code):
        code[0] = args.func(args)
    return code[0]
