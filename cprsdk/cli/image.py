"""``cprsdk image manifests`` (what each platform needs to run an image)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Literal

from cprsdk.cli._common import Subparsers, err
from cprsdk.errors import ConfigError

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


def _add_manifests_parser(actions: Subparsers) -> None:
    p = actions.add_parser(
        "manifests", help="render what Vertex AI, SageMaker, KServe, Kubernetes or Cloud Run need",
        description="Print (or write with --out, one file per object) the requests or objects a platform needs "
        "to run an image built by `cprsdk image build`: Vertex AI models.upload and deployModel bodies; SageMaker "
        "CreateModel, CreateEndpointConfig and CreateEndpoint requests; a KServe InferenceService; a Kubernetes "
        "Deployment, Service, HorizontalPodAutoscaler and PodDisruptionBudget; a Cloud Run service.",
    )
    p.add_argument("--target", required=True, choices=("vertex", "sagemaker", "kserve", "kubernetes", "cloudrun"))
    p.add_argument("--image", required=True, help="the image, as the platform pulls it (REGISTRY/NAME:TAG)")
    p.add_argument("--model", default="default", help="the model the image serves (default: default)")
    p.add_argument("--version", dest="version_name", default="v1", help="the version it serves (default: v1)")
    p.add_argument("--name", help="resource name on the platform (default: <model>-<version>, DNS-safe)")
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
    p.add_argument("--cpu", default="1", help="Kubernetes/KServe/Cloud Run CPU request (default: 1)")
    p.add_argument("--memory", default="2Gi", help="Kubernetes/KServe/Cloud Run memory (default: 2Gi)")
    p.add_argument("--machine-type", default="n1-standard-2", help="Vertex AI machine type (default: n1-standard-2)")
    p.add_argument("--instance-type", default="ml.m5.large", help="SageMaker instance type (default: ml.m5.large)")
    p.add_argument("--role-arn", help="SageMaker ExecutionRoleArn")
    p.add_argument("--project", default="PROJECT", help="Vertex AI project (default: PROJECT, a placeholder)")
    p.add_argument("--region", default="us-central1", help="Vertex AI region (default: us-central1)")
    p.add_argument("--namespace", help="Kubernetes/KServe namespace")
    p.add_argument("--format", choices=("json", "yaml"),
                   help="default: json for vertex and sagemaker, yaml for the others")
    p.add_argument("--out", metavar="DIR", help="write one file per object into DIR instead of stdout")
    p.set_defaults(func=_cmd_manifests)


def add_parsers(sub: Subparsers) -> None:
    """``image manifests``."""
    p = sub.add_parser("image", help="container images and their deployments",
                       description="`image manifests` renders what each platform needs to run an image.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    _add_manifests_parser(actions)
