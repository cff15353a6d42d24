"""``cprsdk init`` (a working project from a template) and ``cprsdk package`` (its checked sdist)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cprsdk.cli._common import (
    Subparsers,
    add_command,
    add_format_flag,
    add_local_files_flags,
    add_quota_flags,
    err,
    settings_flags,
)
from cprsdk.config import load_settings

__all__ = ["add_parsers"]


def _cmd_init(args: argparse.Namespace) -> int:
    """create a working project from a template

    Create DIR with a train script, a predictor (a class, a SageMaker inference module, hook functions or a
    Vertex class, by template), a test, a README with the commands, and [tool.cprsdk] settings.
    """
    from cprsdk.packaging.scaffold import create_project

    dest = Path(args.dir)
    files = create_project(dest, args.template)
    err(f"Created {dest}/ from the {args.template} template ({len(files)} files). Next:")
    err(f"  cd {dest}")
    if args.template == "keras":
        err("  pip install 'cprsdk[keras]'")
    err("  python train.py                                 # writes model/ and sample.jsonl")
    err("  cprsdk local predict --json-instances sample.jsonl")
    err("  cprsdk package")
    err(f"  (more, for this template: {dest}/README.md)")
    print(dest)
    return 0


_PACKAGE_KEYS = ("name", "version", "prediction_class", "framework", "model_dir", "out", "max_code_mb", "max_model_mb",
                 "max_model_files", "allow_unsafe_pickles", "isolated", "skip_load_check", "smoke_instances")


def _cmd_package(args: argparse.Namespace) -> int:
    """build a checked, reproducible sdist of your predictor

    Build SRC into a reproducible sdist and prove it will load: model and code quotas, the prediction class
    imported from the sdist alone in a clean interpreter, and every pickle in the model directory scanned
    (without running it) for modules the package lacks, __main__ classes and anything outside the allowlist of
    model classes (docs/packaging.md). Prints the sdist's path on stdout.
    """
    from cprsdk.packaging.packager import package

    settings = load_settings(args.src, settings_flags(args, _PACKAGE_KEYS))
    result = package(settings, step=(lambda s: err(f"... {s}")) if not args.quiet else (lambda s: None))
    report = result.to_json()
    for check in result.checks:
        if check.warning:
            err(f"WARNING: {check.detail}")
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.format == "json":
        print(json.dumps(report, indent=2))
        return 0
    if not args.quiet:
        for check in result.checks:
            err(f"  ok  {check.name:<18} {check.detail}")
        err(f"sha256 {result.sha256}  ({result.bytes} bytes)")
    print(result.sdist)
    return 0


def _add_init_parser(sub: Subparsers) -> None:
    from cprsdk.packaging.templating import available_templates

    p = add_command(sub, "init", _cmd_init)
    p.add_argument("dir", help="the new project folder")
    p.add_argument("--template", default="sklearn",
                   help=f"one of {', '.join(available_templates())} (default: sklearn)")


def _add_package_parser(sub: Subparsers) -> None:
    p = add_command(sub, "package", _cmd_package)
    p.add_argument("src", nargs="?", default=".", help="project folder (default: the current folder)")
    add_local_files_flags(p, model_dir="model directory to check (default: model)", package=None)
    p.add_argument("--out", metavar="DIR", help="where to write the sdist (default: dist)")
    p.add_argument("--name", help="distribution name, for a bare folder of modules (default: folder name)")
    p.add_argument("--version", help="distribution version, for a bare folder of modules (default: 0.1)")
    p.add_argument("--report", metavar="PATH", help="also write the JSON report to PATH")
    add_quota_flags(p)
    add_format_flag(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print only the sdist path")


def add_parsers(sub: Subparsers) -> None:
    """``init`` and ``package``."""
    _add_init_parser(sub)
    _add_package_parser(sub)
