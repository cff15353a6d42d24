"""Running ``docker build`` on a context made by :func:`cprsdk.image.context.write_context`.

Builds run with ``--network none``: everything the image needs is in the context already. The
classic builder is used (``DOCKER_BUILDKIT=0``), which every Docker engine has, with or without
the buildx plugin. Both ``build_image`` and ``push_image`` read docker's output as it comes and
report each step (a Dockerfile instruction, a layer pushed) to a callback, for a progress display.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cprsdk.errors import BuildError, ConfigError

__all__ = ["BuiltImage", "StepReport", "build_image", "check_push_tag", "docker_command", "push_image"]

# ``step(number, total, what)``: step ``number`` of ``total`` is ``what`` (an instruction begun, a layer done)
StepReport = Callable[[int, int, str], None]

_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_LAYER = re.compile(r"^([0-9a-f]{12}): (Preparing|Waiting|Pushing|Pushed|Layer already exists|Mounted from .*)$")
_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


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


def _lines(command: list[str], env: dict[str, str], *, what: str, hint: str) -> Iterator[str]:
    """The command's merged output, line by line as it comes; a BuildError naming ``what`` if it fails."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    seen: list[str] = []
    with proc:
        for line in proc.stdout:
            seen.append(line)
            yield line.rstrip("\n")
    if proc.returncode:
        raise BuildError(f"{what} failed:\n{_tail(''.join(seen))}", hint=hint)


def _quiet(done: int, total: int, what: str) -> None:
    pass


def build_image(context: Path, *, tag: str | None = None, step: StepReport = _quiet) -> BuiltImage:
    """``docker build`` the context; returns the image's id, tag and size. ``step`` hears of each instruction."""
    docker = docker_command()
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    with tempfile.TemporaryDirectory(prefix="cprsdk-image-") as tmp:
        iid = Path(tmp) / "iid"
        command = [docker, "build", "--network", "none", "--iidfile", str(iid), *(["-t", tag] if tag else []),
                   str(context)]
        hint = f"Fix the cause above and run again; the context stays in {context}."
        for line in _lines(command, env, what=f"docker build of {context}", hint=hint):
            found = _STEP.match(line)
            if found:
                step(int(found[1]), int(found[2]), found[3])
        image_id = iid.read_text().strip()
    size = subprocess.run([docker, "image", "inspect", "--format", "{{.Size}}", image_id],
                          capture_output=True, text=True, check=True).stdout.strip()
    return BuiltImage(image_id=image_id, tag=tag, size=int(size))


def check_push_tag(tag: str | None) -> str:
    """``tag`` if it names a registry (``HOST[:PORT]/NAME[:TAG]``), else a ConfigError saying how to tag it."""
    head, slash, _ = (tag or "").partition("/")
    if not slash or not ("." in head or ":" in head or head == "localhost"):
        raise ConfigError(f"--push needs --tag naming a registry, got {tag!r}.",
                          hint="Tag it REGISTRY/NAME:TAG, e.g. --tag us-docker.pkg.dev/PROJECT/REPO/iris:v1 or "
                          "--tag 127.0.0.1:5000/iris:v1.")
    return str(tag)


def push_image(tag: str, *, step: StepReport = _quiet) -> str:
    """``docker push`` the tag (to the registry its name starts with); returns the pushed manifest's digest.

    ``step`` hears of each layer as it is pushed or found in the registry already.
    """
    check_push_tag(tag)
    layers: dict[str, bool] = {}
    digest = ""
    hint = "Check that the registry answers and that `docker login` was done for it, then run again."
    for line in _lines([docker_command(), "push", tag], dict(os.environ), what=f"docker push {tag}", hint=hint):
        layer, pushed = _LAYER.match(line), _DIGEST.search(line)
        if layer:
            was = layers.get(layer[1], False)
            layers[layer[1]] = was or layer[2].startswith(("Pushed", "Layer already", "Mounted"))
            if layers[layer[1]] and not was:
                step(sum(layers.values()), len(layers), f"layer {layer[1]}: {layer[2].lower()}")
        if pushed:
            digest = pushed[1]
    if not digest:
        raise BuildError(f"docker push {tag} printed no digest.", hint="Check `docker push` by hand.")
    return digest
