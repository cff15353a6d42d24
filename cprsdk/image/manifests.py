"""``cprsdk image manifests``: what each platform needs to run an image, as JSON or YAML.

:func:`render` returns ``{file stem: object}`` for a target, in the order the platform's CLI
applies them; :func:`dump` writes them as one stream (JSON documents one after another, or YAML
documents separated by ``---``) and :func:`write` as one file per object.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from cprsdk.errors import ConfigError
from cprsdk.image import cloud, kube
from cprsdk.image.spec import DeploySpec

__all__ = ["TARGETS", "Target", "dump", "render", "to_yaml", "usage", "write"]

Target = Literal["vertex", "sagemaker", "kserve", "kubernetes", "cloudrun"]
TARGETS: tuple[str, ...] = get_args(Target)
Objects = Mapping[str, Mapping[str, Any]]
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")
_YAML_WORDS = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"}

_RENDERERS: dict[str, Callable[[DeploySpec], dict[str, dict[str, Any]]]] = {
    "vertex": cloud.vertex, "sagemaker": cloud.sagemaker, "kserve": kube.kserve,
    "kubernetes": kube.kubernetes, "cloudrun": kube.cloudrun,
}
_USAGE = {
    "vertex": ["POST {dir}/vertex-upload-model.json to .../v1/projects/PROJECT/locations/REGION/models:upload",
               "POST {dir}/vertex-deploy-model.json to .../v1/projects/PROJECT/locations/REGION/endpoints/"
               "ENDPOINT:deployModel (create the endpoint first: gcloud ai endpoints create)"],
    "sagemaker": ["aws sagemaker create-model --cli-input-json file://{dir}/sagemaker-create-model.json",
                  "aws sagemaker create-endpoint-config --cli-input-json "
                  "file://{dir}/sagemaker-create-endpoint-config.json",
                  "aws sagemaker create-endpoint --cli-input-json file://{dir}/sagemaker-create-endpoint.json"],
    "kserve": ["kubectl apply -f {dir}/kserve-inferenceservice.yaml"],
    "kubernetes": ["kubectl apply -f {dir}/"],
    "cloudrun": ["gcloud run services replace {dir}/cloudrun-service.yaml"],
}


def _target(target: str) -> str:
    if target not in _RENDERERS:
        raise ConfigError(f"Unknown target {target!r}.", hint=f"Choose one of: {', '.join(TARGETS)}.")
    return target


def render(target: str, spec: DeploySpec) -> dict[str, dict[str, Any]]:
    """The objects ``target`` needs for ``spec``, keyed by file stem."""
    return _RENDERERS[_target(target)](spec)


def usage(target: str, folder: str) -> list[str]:
    """The commands that apply the files :func:`write` wrote into ``folder``."""
    return [line.format(dir=folder.rstrip("/")) for line in _USAGE[_target(target)]]


# ------------------------------------------------------------------ YAML (plain data only)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a YAML double-quoted scalar
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _key(key: Any) -> str:
    text = str(key)
    plain = _PLAIN_KEY.match(text) and text.lower() not in _YAML_WORDS
    return text if plain else json.dumps(text)


def _is_block(value: Any) -> bool:
    return isinstance(value, (dict, list)) and bool(value)


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            head = f"{pad}{_key(key)}:"
            out += [head, *_lines(item, indent + 2)] if _is_block(item) else [f"{head} {_flow(item)}"]
    else:
        for item in value:
            if not _is_block(item):
                out.append(f"{pad}- {_flow(item)}")
                continue
            inner = _lines(item, indent + 2)
            out += [f"{pad}- {inner[0].lstrip()}", *inner[1:]]
    return out


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)


def to_yaml(value: Mapping[str, Any]) -> str:
    """One YAML document for plain data (dicts, lists, strings, numbers, booleans, None)."""
    return "\n".join(_lines(dict(value), 0)) + "\n"


# ------------------------------------------------------------------ output


def dump(objects: Objects, *, fmt: Literal["json", "yaml"]) -> str:
    """Every object as one stream: JSON documents one after another, or ``---``-separated YAML."""
    if fmt == "json":
        return "".join(json.dumps(obj, indent=2) + "\n" for obj in objects.values())
    return "".join(f"---\n# {stem}\n{to_yaml(obj)}" for stem, obj in objects.items())


def write(objects: Objects, folder: Path, *, fmt: Literal["json", "yaml"]) -> list[Path]:
    """One file per object in ``folder`` (created), named ``<stem>.json`` or ``<stem>.yaml``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, obj in objects.items():
        path = folder / f"{stem}.{fmt}"
        path.write_text(json.dumps(obj, indent=2) + "\n" if fmt == "json" else to_yaml(obj), encoding="utf-8")
        paths.append(path)
    return paths
