"""``cprsdk init``: a working project from a template."""

from __future__ import annotations

import re
from pathlib import Path

from cprsdk.errors import ConfigError
from cprsdk.packaging.templating import available_templates, render_tree

__all__ = ["create_project"]


def _names(dest: Path) -> dict[str, str]:
    raw = dest.resolve().name
    dist = re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-._") or "mymodel"
    return {"name": dist, "module_name": re.sub(r"[^0-9A-Za-z_]", "_", dist).lower()}


def create_project(dest: Path, template: str) -> list[Path]:
    """Render ``template`` into ``dest`` (new or empty); returns the files written."""
    choices = available_templates()
    if template not in choices:
        raise ConfigError(f"Unknown template {template!r}.", hint=f"Choose one of: {', '.join(choices)}.")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConfigError(f"{dest} already exists and is not empty.",
                          hint="Pick a new folder name, or empty that folder first.")
    dest.mkdir(parents=True, exist_ok=True)
    return render_tree(template, dest, _names(dest))
