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

from . import __version__
from .config import load_settings
from .errors import CprError, NotSupportedError

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
    from .scaffold import create_project

    dest = Path(args.dir)
    files = create_project(dest, args.template)
    _err(f"Created {dest}/ from the {args.template} template ({len(files)} files). Next:")
    _err(f"  cd {dest}")
    if args.template == "keras":
        _err("  pip install 'cprsdk[keras]'")
    _err("  python train.py                                 # writes model/ and sample.jsonl")
    _err("  cprsdk local predict --json-instances sample.jsonl")
    _err("  cprsdk package")
    print(dest)
    return 0


# ------------------------------------------------------------------ package


def _settings_flags(args: argparse.Namespace, keys: Sequence[str]) -> dict[str, Any]:
    return {key: getattr(args, key, None) for key in keys}


_PACKAGE_KEYS = ("name", "version", "prediction_class", "model_dir", "out", "max_code_mb", "max_model_mb",
                 "max_model_files", "allow_unsafe_pickles", "isolated")


def _cmd_package(args: argparse.Namespace) -> int:
    from .packager import package

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
    from .local import local_predict, read_request

    flags = {"model_dir": args.model_dir, "packages": args.package, "prediction_class": args.prediction_class}
    settings = load_settings(".", flags)
    body = read_request(json_instances=args.json_instances, json_request=args.json_request,
                        text_instances=args.text_instances, kwargs=args.kwargs)
    result = local_predict(settings, body)
    if result.log and (args.verbose or not result.ok):
        _err(result.log.rstrip())
    if args.timings:
        _err("timings: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in result.timings.items()))
    print(json.dumps(result.body))
    return 0 if result.ok else 1


def _cmd_not_yet(args: argparse.Namespace) -> int:
    raise NotSupportedError(
        f"`cprsdk {args.command}` is not supported yet in cprsdk {__version__}.",
        hint="Use `cprsdk local predict` to run a predictor as the node will, and `cprsdk package` to build it.",
    )


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
    p.add_argument("--kwargs", metavar="JSON", help="extra request fields passed to predict, as a JSON object")
    p.add_argument("--timings", action="store_true", help="print where the time went, on stderr")
    p.add_argument("-v", "--verbose", action="store_true", help="show the predictor's own output")
    p.set_defaults(func=_cmd_local_predict)


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
                       description="Create DIR with a train script, a predictor, a pickled preprocessor, "
                       "a test and [tool.cprsdk] settings.")
    p.add_argument("dir", help="the new project folder")
    p.add_argument("--template", default="sklearn", help="sklearn (default) or keras")
    p.set_defaults(func=_cmd_init)
    _add_package_parser(sub)
    _add_local_parser(sub)
    for name, what in (("deploy", "upload and publish a version"), ("serve", "run a prediction node"),
                       ("predict", "send a request to a node"), ("batch", "run batch prediction"),
                       ("versions", "manage versions"), ("models", "manage models")):
        p = sub.add_parser(name, help=f"{what} (not supported yet)", add_help=False)
        p.set_defaults(func=_cmd_not_yet)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cprsdk`` command; returns the exit code."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.func is not _cmd_not_yet:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    code = [0]
    with _translated_errors(code):
        code[0] = args.func(args)
    return code[0]
