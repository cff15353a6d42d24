"""The ``cprsdk`` command: argument parsing only; the work lives in the library.

``main(argv) -> int`` assembles the parser from one module per command family (``project``:
init, package; ``local``: local predict; ``registry``: deploy, models, versions; ``node``: serve,
predict; ``batch``: batch; ``image``: image; ``cache``: cache prune) and runs the chosen command
under one error translator, which turns every :class:`CprError` into an ``ERROR`` line (and a
``TIP`` line) on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator, Sequence

from cprsdk import __version__
from cprsdk.cli import batch, cache, image, local, node, project, registry
from cprsdk.cli._common import err
from cprsdk.errors import CprError

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


@contextlib.contextmanager
def _translated_errors(code: list[int]) -> Iterator[None]:
    try:
        yield
    except CprError as exc:
        err(f"ERROR: {exc.message}")
        if exc.hint:
            err(f"TIP: {exc.hint}")
        code[0] = 1
    except KeyboardInterrupt:
        err("Interrupted.")
        code[0] = 130


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
    for family in (project, local, registry, node, batch, image, cache):  # the order of `cprsdk --help`
        family.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cprsdk`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    code = [0]
    with _translated_errors(code):
        code[0] = args.func(args)
    return code[0]
