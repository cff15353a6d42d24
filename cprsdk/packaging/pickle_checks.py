"""The pickle checks of ``cprsdk package``: each file in the model directory scanned, then judged.

:func:`static_pickle_checks` scans every pickle (:mod:`cprsdk.packaging.pickles`) and refuses, by
name, what the allowlist (:mod:`cprsdk.packaging.pickle_policy`) does not let through;
:func:`policy_problems` judges the answers of the clean import check, where each name was
imported. With ``allow_unsafe_pickles`` the refusals come back as warnings instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cprsdk.config import Settings
from cprsdk.errors import PickleCheckError, UnreadablePickle
from cprsdk.packaging.pickle_policy import own_modules, resolved_refusal, static_refusal
from cprsdk.packaging.pickles import GlobalRef, PickleScan, canonical, find_pickles, scan_file

__all__ = ["policy_problems", "static_pickle_checks"]

_MAIN_MODULES = frozenset({"__main__", "__mp_main__"})


def _shown(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


def _side_file_problems(scan: PickleScan, shown: str) -> list[str]:
    """An old joblib NDArrayWrapper loads its side file with allow_pickle=True: it must sit beside the pickle."""
    problems = []
    for name in scan.side_files:
        side = scan.path.parent / name
        if not name or Path(name).name != name or not side.is_file():
            problems.append(f"{shown} loads the side file {name!r}, which is not a file beside it. Re-save the "
                            "model with a current joblib (joblib.dump), which keeps arrays inside the file.")
    return problems


@dataclass(frozen=True)
class _Scanned:
    """One file's scan: its report record, the references to resolve, problems, and what was let through."""

    record: dict[str, Any]
    refs: tuple[GlobalRef, ...] = ()
    problems: tuple[str, ...] = ()
    unsafe: tuple[str, ...] = ()


def _scan_one(settings: Settings, path: Path, own: frozenset[str]) -> _Scanned:
    shown = _shown(path, settings.project_dir)
    try:
        scan = scan_file(path)
    except UnreadablePickle as exc:
        problem = (f"{shown} cannot be scanned ({exc}); re-save it with pickle or joblib, "
                   "or pass --allow-unsafe-pickles to ship it unchecked.")
        record: dict[str, Any] = {"path": shown, "format": "unreadable", "references": [], "detail": str(exc)}
        if settings.allow_unsafe_pickles:
            return _Scanned(record, unsafe=(problem,))
        return _Scanned(record, problems=(problem,))
    imported = list(dict.fromkeys(canonical(r) for r in scan.references))  # Python 2 names as the unpickler maps them
    record = {"path": shown, "format": scan.format, "compression": scan.compression,
              "references": [str(r) for r in imported]}
    problems, unsafe = _side_file_problems(scan, shown), list[str]()
    refs = tuple(ref for ref in imported if ref.module not in _MAIN_MODULES)
    for ref in imported:
        if ref.module in _MAIN_MODULES:
            problems.append(
                f"{shown}{scan.where(ref)} references {ref}: the class was defined in the script that pickled "
                f"it, so nothing can import it at prediction time. Move the class into a module that you "
                f"package (for example preprocess.py), import it from there, and pickle it again."
            )
            continue
        reason = static_refusal(ref, own=own)
        if reason:
            text = f"{shown}{scan.where(ref)} references {ref}: {reason}"
            (unsafe if settings.allow_unsafe_pickles else problems).append(text)
    return _Scanned(record, refs, tuple(problems), tuple(unsafe))


def static_pickle_checks(
    settings: Settings, model_dir: Path,
) -> tuple[list[dict[str, Any]], set[GlobalRef], list[str]]:
    """Every pickle's scan record, the references to resolve, and the refusals let through (warned about)."""
    from cprsdk.packaging.limits import dir_stats

    own = own_modules(settings.project_dir)
    scanned = [_scan_one(settings, path, own) for path in find_pickles([p for p, _ in dir_stats(model_dir).files])]
    problems = [text for one in scanned for text in one.problems]
    if problems:
        raise PickleCheckError("\n".join(problems))
    refs = {ref for one in scanned for ref in one.refs}
    return [one.record for one in scanned], refs, [text for one in scanned for text in one.unsafe]


def policy_problems(settings: Settings, refs: set[GlobalRef], pickles: list[dict[str, Any]],
                     answers: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The references that resolved to something other than an allowed class (see pickle_policy)."""
    own = own_modules(settings.project_dir)
    shipped = own | {a["module"].split(".")[0] for a in answers if a.get("origin") == "package"}
    by_ref = {GlobalRef(a["module"], a["name"]): a for a in answers}
    refused: dict[str, str] = {}
    for ref in refs:
        found = by_ref.get(ref)
        if found is None or found["status"] != "ok" or static_refusal(ref, own=own) is not None:
            continue  # unresolved: reported by _reference_problems; refused by name: reported already
        reason = resolved_refusal(ref, kind=found["kind"], defined_in=found["defined_in"], own=shipped)
        if reason:
            refused[str(ref)] = reason
    texts = [f"{scan['path']} references {ref}: {refused[ref]}" for scan in pickles for ref in scan["references"]
             if ref in refused]
    return ([], texts) if settings.allow_unsafe_pickles else (texts, [])
