"""Rendering the files under ``templates/`` (shipped in the wheel as ``cprsdk.templates``).

Files ending in ``.tmpl`` are rendered (``{{ key }}`` placeholders; an unknown key is an error)
and lose the suffix; other files are copied as they are. Python files are stored as ``.py.tmpl`` so
nothing imports or collects them inside cprsdk, and ``gitignore`` becomes ``.gitignore`` (dotfiles
do not travel well as package data).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = ["available_templates", "render_text", "render_tree", "template_root"]

_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")


def template_root() -> Traversable:
    return resources.files("cprsdk.templates")


def available_templates() -> list[str]:
    """Project templates for ``cprsdk init`` (every folder except the internal ``sdist``)."""
    return sorted(
        entry.name for entry in template_root().iterdir()
        if entry.is_dir() and not entry.name.startswith(("_", ".")) and entry.name != "sdist"
    )


def render_text(text: str, values: Mapping[str, str], *, origin: str) -> str:
    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"template {origin} uses {{{{ {key} }}}}, which has no value")
        return values[key]

    return _PLACEHOLDER.sub(replace, text)


def _walk(node: Traversable, rel: Path) -> list[tuple[Traversable, Path]]:
    found: list[tuple[Traversable, Path]] = []
    for entry in sorted(node.iterdir(), key=lambda e: e.name):
        if entry.name == "__pycache__" or entry.name.endswith(".pyc"):
            continue
        if entry.is_dir():
            found.extend(_walk(entry, rel / entry.name))
        else:
            found.append((entry, rel / entry.name))
    return found


def render_tree(name: str, dest: Path, values: Mapping[str, str]) -> list[Path]:
    """Render template folder ``name`` into ``dest``; returns the files written."""
    written = []
    for entry, rel in _walk(template_root() / name, Path()):
        target = dest / (rel.with_name(".gitignore") if rel.name == "gitignore" else rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel.suffix == ".tmpl":
            target = target.with_suffix("")
            target.write_text(render_text(entry.read_text(encoding="utf-8"), values, origin=f"{name}/{rel}"),
                              encoding="utf-8")
        else:
            target.write_bytes(entry.read_bytes())
        written.append(target)
    return written
