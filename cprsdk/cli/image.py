"""``cprsdk image build`` (a container image for one version) and ``cprsdk image manifests``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cprsdk.cli._common import Subparsers, add_command, add_local_files_flags, add_registry_flags, err
from cprsdk.errors import ConfigError

if TYPE_CHECKING:
    from cprsdk.image.context import ImageSource

__all__ = ["add_parsers"]


# ------------------------------------------------------------------ manifests


def _env_pairs(items: list[str] | None) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--env must look like NAME=VALUE, got {item!r}.")
        pairs.append((key, value))
    return tuple(pairs)


def _default_format(target: str) -> str:
    return "json" if target in ("vertex", "sagemaker") else "yaml"


def _cmd_manifests(args: argparse.Namespace) -> int:
    """render what Vertex AI, SageMaker, KServe, Kubernetes or Cloud Run need

    Print (or write with --out, one file per object) the requests or objects a platform needs to run an image
    built by `cprsdk image build`: Vertex AI models.upload and deployModel bodies; SageMaker CreateModel,
    CreateEndpointConfig and CreateEndpoint requests; a KServe InferenceService; a Kubernetes Deployment,
    Service, HorizontalPodAutoscaler and PodDisruptionBudget; a Cloud Run service.
    """
    from cprsdk.image.manifests import dump, render, usage, write
    from cprsdk.image.spec import DeploySpec

    spec = DeploySpec(
        image=args.image, model=args.model, version=args.version_name, name=args.name or "", port=args.port,
        registry=args.registry, model_uri=args.model_uri, env=_env_pairs(args.env),
        min_replicas=args.min_replicas, max_replicas=args.max_replicas, target_cpu_percent=args.target_cpu,
        cpu=args.cpu, memory=args.memory, machine_type=args.machine_type, instance_type=args.instance_type,
        role_arn=args.role_arn, project=args.project, region=args.region, namespace=args.namespace,
    )
    objects = render(args.target, spec)
    fmt: Literal["json", "yaml"] = "json" if (args.format or _default_format(args.target)) == "json" else "yaml"
    if args.out is None:
        sys.stdout.write(dump(objects, fmt=fmt))
        return 0
    for path in write(objects, Path(args.out), fmt=fmt):
        print(path)
    for line in usage(args.target, args.out):
        err(f"next: {line}")
    return 0


# How big the machine is, on each platform: (flag, default, what it sets)
_SIZES = (
    ("--cpu", "1", "Kubernetes/KServe/Cloud Run CPU request"),
    ("--memory", "2Gi", "Kubernetes/KServe/Cloud Run memory"),
    ("--machine-type", "n1-standard-2", "Vertex AI machine type"),
    ("--instance-type", "ml.m5.large", "SageMaker instance type"),
)


def _add_manifests_parser(actions: Subparsers) -> None:
    p = add_command(actions, "manifests", _cmd_manifests)
    p.add_argument("--target", required=True, choices=("vertex", "sagemaker", "kserve", "kubernetes", "cloudrun"))
    p.add_argument("--image", required=True, help="the image, as the platform pulls it (REGISTRY/NAME:TAG)")
    p.add_argument("--model", help="the model the node serves it as (default: the one the image was built for)")
    p.add_argument("--version", dest="version_name", help="the version (default: the image's)")
    p.add_argument("--name", help="resource name on the platform (default: <model>-<version>, else the image's "
                   "name and tag, DNS-safe)")
    p.add_argument("--registry", metavar="URI", help="serve every version of this registry instead")
    p.add_argument("--model-uri", metavar="URI",
                   help="the model directory in storage: Vertex artifactUri (gs://), SageMaker ModelDataUrl "
                   "(s3://.../model.tar.gz), KServe STORAGE_URI; omit when the model is baked into the image")
    p.add_argument("--env", action="append", metavar="NAME=VALUE", help="an environment variable (repeat)")
    p.add_argument("--port", type=int, default=8080, help="the node's port in the container (default: 8080)")
    p.add_argument("--min-replicas", type=int, default=1, metavar="N", help="(default: 1)")
    p.add_argument("--max-replicas", type=int, default=3, metavar="N", help="(default: 3)")
    p.add_argument("--target-cpu", type=int, default=70, metavar="PERCENT",
                   help="CPU utilization the autoscaler aims at (default: 70)")
    for flag, default, what in _SIZES:
        p.add_argument(flag, default=default, help=f"{what} (default: {default})")
    p.add_argument("--role-arn", help="SageMaker ExecutionRoleArn")
    p.add_argument("--project", default="PROJECT", help="Vertex AI project (default: PROJECT, a placeholder)")
    p.add_argument("--region", default="us-central1", help="Vertex AI region (default: us-central1)")
    p.add_argument("--namespace", help="Kubernetes/KServe namespace")
    p.add_argument("--format", choices=("json", "yaml"),
                   help="default: json for vertex and sagemaker, yaml for the others")
    p.add_argument("--out", metavar="DIR", help="write one file per object into DIR instead of stdout")


# ------------------------------------------------------------------ build


def _source(args: argparse.Namespace, work: Path) -> ImageSource:
    from cprsdk.config import load_settings
    from cprsdk.image.context import from_local, from_registry

    local = {"model_dir": args.model_dir, "packages": args.package, "prediction_class": args.prediction_class}
    if any(v is not None for v in local.values()):
        return from_local(load_settings(".", local), args.model or "default", args.version_name or "v1", work)
    if not args.model:
        raise ConfigError("cprsdk image build needs --model (a registry version) or local files.",
                          hint="Pass --model M [--version V] [--registry R], or --model-dir, --package and "
                          "--prediction-class.")
    settings = load_settings(".", {"registry": args.registry})
    return from_registry(settings.registry, args.model, args.version_name, work)


def _cmd_build(args: argparse.Namespace) -> int:
    """build a container image that serves one version

    Build an image whose entrypoint is `cprsdk serve` for one version, from the registry (--model M --version
    V) or from local files (--model-dir, --package, --prediction-class). The build is offline: dependencies
    come from a wheelhouse pip makes here for the base image's platform. The image runs as a non-root user,
    speaks the Vertex AI, SageMaker and KServe contracts, and is labelled with the version's digest and the
    cprsdk version.
    """
    import dataclasses
    import tempfile

    from cprsdk.image.context import write_context
    from cprsdk.image.docker import check_push_tag, docker_command
    from cprsdk.image.wheelhouse import Platform

    platform = Platform(platform=args.platform, python_version=args.python_version)
    if args.push:
        check_push_tag(args.tag)  # before any download: say early what is wrong
    if args.context_only is None:
        docker_command()
    with tempfile.TemporaryDirectory(prefix="cprsdk-image-") as tmp:
        source = _source(args, Path(tmp))
        if args.requirement:
            source = dataclasses.replace(source, requirements=(*source.requirements, *args.requirement))
        context = Path(args.context_only) if args.context_only else Path(tmp, "context")
        write_context(source, context, base=args.base, bake_model=args.bake_model, platform=platform)
        if args.context_only:
            tag = f" -t {args.tag}" if args.tag else ""
            print(context)
            err(f"next: DOCKER_BUILDKIT=0 docker build --network none{tag} {context}")
            return 0
        built = _built(context, args.tag, push=args.push)
    err(f"built {built['tag'] or built['id']} ({built['size'] / 1e6:.0f} MB)"
        + (f", pushed as {built['digest']}" if args.push else ""))
    print(json.dumps(built))
    return 0


def _built(context: Path, tag: str | None, *, push: bool) -> dict[str, Any]:
    """Build (and with ``push``, push) the context, with a progress display; the image's id, tag, size, digest."""
    from cprsdk.cli._progress import Steps
    from cprsdk.image.docker import build_image, push_image

    steps = Steps("build")
    try:
        built = build_image(context, tag=tag, step=steps)
    finally:
        steps.close()
    result: dict[str, Any] = {"id": built.image_id, "tag": built.tag, "size": built.size}
    if push and tag:
        layers = Steps("push")
        try:
            result["digest"] = push_image(tag, step=layers)
        finally:
            layers.close()
    return result


def _add_build_parser(actions: Subparsers) -> None:
    p = add_command(actions, "build", _cmd_build)
    add_registry_flags(p, role="registry of the version", output=False)
    p.add_argument("--model", help="the model (a registry version; with local files, its name in the image)")
    p.add_argument("--version", dest="version_name", help="the version (default: the model's default version)")
    add_local_files_flags(p, model_dir="local files: the model directory (always baked in)",
                          package="local files: sdists or source folders", prediction_class="local files: the class")
    p.add_argument("--base", default="python:3.11-slim", metavar="IMAGE",
                   help="base image with Python 3.11 (default: python:3.11-slim)")
    p.add_argument("--bake-model", action="store_true",
                   help="put the model directory in the image (default for local files); otherwise the node "
                   "fetches it at start from the registry, AIP_STORAGE_URI, /opt/ml/model or /mnt/models")
    p.add_argument("--requirement", action="append", metavar="REQ",
                   help="a distribution the image also needs, beyond what the packages declare, e.g. "
                   "scikit-learn==1.5.2 (repeat)")
    p.add_argument("--tag", help="tag for the image, e.g. registry.example/iris:v1")
    p.add_argument("--push", action="store_true",
                   help="then push --tag (REGISTRY/NAME:TAG) through the local docker, which must be logged in "
                   "to that registry; prints the pushed digest")
    p.add_argument("--platform", default="manylinux_2_36_x86_64",
                   help="wheel platform of the base image (default: manylinux_2_36_x86_64, glibc 2.36)")
    p.add_argument("--python-version", default="3.11", help="the base image's Python (default: 3.11)")
    p.add_argument("--context-only", metavar="DIR",
                   help="write the Dockerfile, wheelhouse and packages into DIR and print how to build them; "
                   "needs no Docker")


def add_parsers(sub: Subparsers) -> None:
    """``image build`` and ``image manifests``."""
    p = sub.add_parser("image", help="container images and their deployments",
                       description="`image build` makes a container image for one version; `image manifests` "
                       "renders what each platform needs to run it.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    _add_build_parser(actions)
    _add_manifests_parser(actions)
