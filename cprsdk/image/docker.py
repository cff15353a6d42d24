"""Running ``docker build`` on a context made by :func:`cprsdk.image.context.write_context`.

Builds run with ``--network none``: everything the image needs is in the context already. The
classic builder is used (``DOCKER_BUILDKIT=0``), which every Docker engine has, with or without
the buildx plugin.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cprsdk.errors import BuildError, ConfigError

__all__ = ["BuiltImage", "build_image", "docker_command"]


@dataclass(frozen=True, kw_only=True)
class BuiltImage:
    image_id: str
    tag: str | None
    size: int  # bytes


def docker_command() -> str:
    """The docker client's path; a clear error when there is none."""
    found = shutil.which("docker")
    if found is None:
        raise ConfigError("No docker command is on PATH.",
                          hint="Install Docker, or pass --context-only DIR to write the build context and build "
                          "it elsewhere.")
    return found


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def build_image(context: Path, *, tag: str | None = None) -> BuiltImage:
    """``docker build`` the context; returns the image's id, tag and size."""
    docker = docker_command()
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    with tempfile.TemporaryDirectory(prefix="cprsdk-image-") as tmp:
        iid = Path(tmp) / "iid"
        command = [docker, "build", "--network", "none", "--iidfile", str(iid), *(["-t", tag] if tag else []),
                   str(context)]
        proc = subprocess.run(command, capture_output=True, text=True, env=env)
        if proc.returncode:
            raise BuildError(f"docker build of {context} failed:\n{_tail(proc.stdout + proc.stderr)}",
                             hint=f"Fix the cause above and run again; the context stays in {context}.")
        image_id = iid.read_text().strip()
    size = subprocess.run([docker, "image", "inspect", "--format", "{{.Size}}", image_id],
                          capture_output=True, text=True, check=True).stdout.strip()
    return BuiltImage(image_id=image_id, tag=tag, size=int(size))
