"""``cprsdk batch``: predict over datasets, and follow the jobs (status, list, stop, results)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from cprsdk.cli._common import (
    Command,
    Subparsers,
    add_command,
    add_format_flag,
    add_local_files_flags,
    add_registry_flags,
    err,
    need,
)
from cprsdk.cli._progress import Progress
from cprsdk.config import load_settings
from cprsdk.errors import ConfigError

if TYPE_CHECKING:
    from cprsdk.batch.jobs import JobSpec
    from cprsdk.runtime.resolved import ResolvedVersion

__all__ = ["add_parsers"]


def _version(args: argparse.Namespace) -> tuple[ResolvedVersion, dict[str, Any]]:
    """The resolved version (a deployed one, or local files) and how people name it."""
    from cprsdk.runtime.resolved import resolve_local, resolve_registry_version

    if args.model:
        from cprsdk.registry.registry import Registry

        registry = Registry(load_settings(".", {"registry": args.registry}).registry)
        version = resolve_registry_version(registry, args.model, args.version_name)
        return version, {"model": version.model, "version": version.name, "registry": registry.uri}
    settings = load_settings(".", {"model_dir": args.model_dir, "packages": args.package,
                                   "prediction_class": args.prediction_class, "framework": args.framework})
    if not (settings.prediction_class or settings.framework) or not settings.model_dir.is_dir():
        raise ConfigError("Name a deployed model (--model M) or local files (--model-dir, --package, "
                          "--prediction-class or --framework).")
    return resolve_local(settings), {"model_dir": str(settings.model_dir)}


def _absolute(uri: str) -> str:
    import os

    return uri if "://" in uri else os.path.abspath(uri)


def _job_spec(args: argparse.Namespace, version: ResolvedVersion, source: dict[str, Any]) -> JobSpec:
    from cprsdk.batch.jobs import JobSpec

    timeout = load_settings(".", {"record_timeout": args.record_timeout}).record_timeout
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"--record-timeout is a number of seconds above 0, got {timeout:g}.",
                          hint="Give the seconds one predict call may take, or leave it out for no limit.")
    return JobSpec(
        inputs=tuple(args.input), output=_absolute(args.output).rstrip("/"), version=version,
        data_format=args.data_format, batch_size=args.batch_size,
        workers=args.workers, shard_size=args.shard_size, max_error_rate=args.max_error_rate,
        key_field=args.key_field, instance_type=args.instance_type, included_fields=_names(args.included_fields),
        excluded_fields=_names(args.excluded_fields), output_format=args.output_format,
        output_compression=args.output_compression, record_timeout=timeout, engine=args.engine,
        scheduler=args.scheduler, source=source)


def _names(given: str | None) -> tuple[str, ...]:
    """``a,b,c`` as field names (blank ones dropped)."""
    return tuple(name.strip() for name in (given or "").split(",") if name.strip())


def _cmd_batch_predict(args: argparse.Namespace) -> int:
    """score every record of the inputs

    Score every record of the inputs (JSON lines, CSV with a header, or whole files) with a deployed model
    (--model) or local files (--model-dir, --package, --prediction-class), and write sharded predictions,
    errors, CSV views and a summary to --output; every record ends as a prediction or an error line. Running
    the same command again with the same --output resumes the job. Prints the summary as JSON; exits 1 unless
    the job SUCCEEDED.
    """
    from cprsdk.batch import index, jobs

    if not args.input or not args.output:
        raise ConfigError("batch predict needs --input URI... and --output URI.")
    if not 0 <= args.max_error_rate <= 1:
        raise ConfigError(f"--max-error-rate is a fraction from 0 to 1 (0.01 = 1%), got {args.max_error_rate}.")
    spec = _job_spec(args, *_version(args))
    index.remember(jobs.job_id(spec.output), spec.output)
    quiet = args.format == "json"
    if not quiet:
        err(f"job {jobs.job_id(spec.output)}: writing to {spec.output}")
    progress = Progress("rows", quiet=quiet)
    try:
        summary = jobs.run_job(spec, progress=progress, restart=args.restart)
    finally:
        progress.close()
    print(json.dumps(summary.to_json(), indent=2))
    if summary.message:
        err(("ERROR: " if summary.state == "FAILED" else "note: ") + summary.message)
    return 0 if summary.state == "SUCCEEDED" else 1


_JOB_COLUMNS = (("job", "job"), ("state", "state"), ("succeeded", "succeeded"), ("failed", "failed"),
                ("output", "output"))


def _cmd_batch_list(args: argparse.Namespace) -> int:
    """list the jobs started on this machine

    List the jobs started on this machine, with their states and outputs.
    """
    from cprsdk.batch import index
    from cprsdk.cli._output import print_records

    print_records(index.list_jobs(), _JOB_COLUMNS, fmt=args.format)
    return 0


def _cmd_batch_status(args: argparse.Namespace) -> int:
    from cprsdk.batch import index

    print(json.dumps(index.job_status(need(args.job, "JOB")), indent=2))
    return 0


def _cmd_batch_stop(args: argparse.Namespace) -> int:
    from cprsdk.batch import index

    job = need(args.job, "JOB")
    index.stop_job(job)
    err(f"Asked {job} to stop after the shards in flight; rerun its command to resume.")
    return 0


def _cmd_batch_results(args: argparse.Namespace) -> int:
    from cprsdk.batch import index

    sys.stdout.buffer.write(index.results_csv(need(args.job, "JOB")))
    return 0


def _add_predict_parser(actions: Subparsers) -> None:
    p = add_command(actions, "predict", _cmd_batch_predict)
    p.add_argument("--input", action="append", metavar="URI", help="input files, folders or globs (repeat)")
    p.add_argument("--output", metavar="URI", help="where the job writes (it is also the job's identity)")
    p.add_argument("--data-format", choices=("jsonl", "csv", "parquet", "files"), default="jsonl",
                   help="JSON lines or CSV (either gzip-compressed: a .gz name or gzip's bytes), Parquet (needs "
                   "pyarrow), or whole files (default: jsonl)")
    p.add_argument("--model", help="a deployed model (its default version unless --version)")
    p.add_argument("--version", dest="version_name", help="the deployed version")
    add_registry_flags(p, role="the registry of --model", output=False)
    add_local_files_flags(p, model_dir="local files instead of --model: the model directory",
                          package="local files: packages", prediction_class="local files: the class")
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="instances per predict call (default: 64)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes (default: 1)")
    p.add_argument("--shard-size", type=int, default=1000, metavar="N",
                   help="records per output shard, the unit of commit and resume (default: 1000; "
                        "each shard costs a few file writes: 10000 suits models that score thousands of "
                        "records a second)")
    p.add_argument("--max-error-rate", type=float, default=1.0, metavar="F",
                   help="fail the job when more than this fraction of records fails (0.01 = 1%%; default: 1)")
    _add_instance_flags(p)
    p.add_argument("--output-format", choices=("jsonl", "parquet"), default="jsonl",
                   help="the prediction files: JSON lines, or Parquet (needs pyarrow) (default: jsonl)")
    p.add_argument("--output-compression", choices=("none", "gzip"), default="none",
                   help="gzip the JSON lines files (.jsonl.gz), or Parquet's codec gzip instead of snappy "
                   "(default: none)")
    p.add_argument("--record-timeout", type=float, metavar="SECONDS",
                   help="seconds one predict call may take; past it the worker is ended and replaced, and the "
                   "record at fault becomes an error line RecordTimeout (config key record_timeout; default: "
                   "no limit)")
    p.add_argument("--restart", action="store_true",
                   help="discard this job's earlier output in --output and start over (a rerun without it "
                   "resumes, and refuses if the inputs, the version or the output's shape changed)")
    p.add_argument("--engine", choices=("local", "dask"), default="local", help="(default: local)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="with --engine dask: the scheduler (default: a local cluster)")
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help="table: progress on stderr while the job runs (a bar on a terminal, else a line every "
                   "5 s); json: no progress. The summary is JSON on stdout either way (default: table)")


def _add_instance_flags(p: argparse.ArgumentParser) -> None:
    """Vertex AI's instanceConfig, as flags (docs/batch.md, "From records to instances")."""
    p.add_argument("--instance-type", choices=("object", "array"),
                   help="send each record as a JSON object or a JSON array (default: as the input gives it; CSV "
                   "and Parquet rows as arrays)")
    p.add_argument("--key-field", metavar="NAME",
                   help="leave this field out of the instance and write it as \"key\" instead of the instance")
    p.add_argument("--included-fields", metavar="A,B,...",
                   help="send only these fields, in this order (the order of an array instance)")
    p.add_argument("--excluded-fields", metavar="A,B,...",
                   help="send all fields but these (they stay in the output's instance)")


def _add_job_action(actions: Subparsers, name: str, func: Command, summary: str, description: str) -> None:
    p = actions.add_parser(name, help=summary, description=description)
    p.add_argument("job", nargs="?", metavar="JOB", help="the job id (as batch predict and batch list print it)")
    p.set_defaults(func=func)


def add_parsers(sub: Subparsers) -> None:
    """``batch predict``, ``batch status|stop|results JOB`` and ``batch list``."""
    p = sub.add_parser(
        "batch", help="batch prediction over datasets",
        description="`batch predict` scores every record of the inputs (JSON lines, CSV with a header, or "
        "whole files) and writes sharded predictions, errors, CSV views and a summary to --output; every "
        "record ends as a prediction or an error line. Running the same command again with the same "
        "--output resumes the job. `batch status|stop|results JOB` and `batch list` follow jobs.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    _add_predict_parser(actions)
    _add_job_action(actions, "status", _cmd_batch_status, "print a job's summary as JSON",
                    "Print the summary of job JOB as JSON; while it runs, its state and committed shards.")
    a = add_command(actions, "list", _cmd_batch_list)
    add_format_flag(a)
    _add_job_action(actions, "stop", _cmd_batch_stop, "ask a job to stop after the shards in flight",
                    "Ask job JOB to stop after the shards in flight; rerun its command to resume it.")
    _add_job_action(actions, "results", _cmd_batch_results, "print a job's results.csv",
                    "Print results.csv of job JOB: one row per prediction (input reference, prediction).")
