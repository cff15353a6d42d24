"""``cprsdk cache prune``: bound the version and install caches by hand."""

from __future__ import annotations

import argparse
import json

from cprsdk.cli._common import Subparsers, add_command, add_format_flag, err

__all__ = ["add_parsers"]


def _cmd_prune(args: argparse.Namespace) -> int:
    """remove cached versions and installs until the cache fits a size

    Remove entries of the version and install caches until they total at most --max-size: first versions no
    longer in --registry (when given), then the least recently used. Entries a running node or command uses
    are never removed. Prints each entry removed and the bytes freed.
    """
    from cprsdk.packaging.install import cache_dir
    from cprsdk.registry.registry import Registry
    from cprsdk.runtime.cache import max_cache_bytes, parse_size, prune

    limit = parse_size(args.max_size) if args.max_size is not None else max_cache_bytes()
    registry = Registry(args.registry) if args.registry else None
    result = prune(cache_dir(), max_bytes=limit, registry=registry, dry_run=args.dry_run)
    if args.format == "json":
        print(json.dumps({"cache": str(cache_dir()), "maxBytes": limit, **result.to_json()}, indent=2))
        return 0
    verb = "would remove" if args.dry_run else "removed"
    for entry in result.removed:
        why = "not in the registry" if entry.in_registry is False else "least recently used"
        print(f"{verb} {entry.path}  ({entry.bytes} bytes, {why})")
    for path in result.in_use:
        err(f"kept {path}: a running process uses it")
    err(f"{cache_dir()}: {verb} {len(result.removed)} entries, {result.freed_bytes} bytes "
        f"{'would be ' if args.dry_run else ''}freed; {result.kept_bytes} bytes kept (bound {limit} bytes)")
    return 0


def add_parsers(sub: Subparsers) -> None:
    """``cache prune``."""
    cache = sub.add_parser("cache", help="inspect and bound the local caches",
                           description="The cache (CPRSDK_CACHE_DIR) holds fetched versions and installed packages.")
    actions = cache.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = add_command(actions, "prune", _cmd_prune)
    p.add_argument("--dry-run", action="store_true", help="print what would be removed, remove nothing")
    p.add_argument("--max-size", metavar="SIZE",
                   help="the bound, e.g. 20GB, 500MB or 0 for everything unused (default: CPRSDK_CACHE_MAX_SIZE, "
                   "else 20GB)")
    p.add_argument("--registry", metavar="URI",
                   help="remove first the versions this registry no longer has (default: least recently used only)")
    add_format_flag(p)
