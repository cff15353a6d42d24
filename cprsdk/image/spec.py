"""What every deployment target needs to know about an image: one frozen record, checked once."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cprsdk.errors import ConfigError

__all__ = ["DRAIN_SECONDS", "DeploySpec", "resource_name"]

# How long `cprsdk serve` drains in-flight requests after SIGTERM (uvicorn's timeout_graceful_shutdown in
# cprsdk/node/server.py); a platform's grace period must be longer than this plus the preStop pause.
DRAIN_SECONDS = 60
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def resource_name(text: str) -> str:
    """``text`` as a DNS-1123 label (also a valid SageMaker and Vertex AI id): ``Iris_V1`` -> ``iris-v1``."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].strip("-")
    if not name:
        raise ConfigError(f"Cannot make a resource name from {text!r}.",
                          hint="Pass --name with lower-case letters, digits and dashes.")
    return name


@dataclass(frozen=True, kw_only=True)
class DeploySpec:
    """The common inputs of every target; sizes and counts have defaults that suit a small CPU model."""

    image: str
    model: str | None = None  # None: the model the image was built for (its CPRSDK_IMAGE_MODEL)
    version: str | None = None  # likewise
    name: str = ""  # the resource name on every platform; default: "<model>-<version>", else the image's name
    port: int = 8080
    registry: str | None = None  # serve every version of this registry instead of the image's own version
    model_uri: str | None = None  # the model directory in storage (Vertex artifactUri, SageMaker ModelDataUrl...)
    env: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    min_replicas: int = 1
    max_replicas: int = 3
    target_cpu_percent: int = 70
    cpu: str = "1"
    memory: str = "2Gi"
    machine_type: str = "n1-standard-2"  # Vertex AI
    instance_type: str = "ml.m5.large"  # SageMaker
    role_arn: str | None = None  # SageMaker ExecutionRoleArn
    project: str = "PROJECT"  # Vertex AI
    region: str = "us-central1"  # Vertex AI
    namespace: str | None = None  # Kubernetes and KServe
    pre_stop_seconds: int = 10

    def __post_init__(self) -> None:
        if not self.image:
            raise ConfigError("No image is given.", hint="Pass --image REGISTRY/NAME:TAG (see cprsdk image build).")
        if self.name and not _NAME.match(self.name):
            raise ConfigError(f"--name {self.name!r} is not a DNS-1123 label.",
                              hint="Use at most 63 lower-case letters, digits and dashes, starting and ending "
                              "with a letter or digit.")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"--port must be 1-65535, got {self.port}.")
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ConfigError(f"Replicas must satisfy 1 <= min ({self.min_replicas}) <= max ({self.max_replicas}).",
                              hint="Raise --max-replicas or lower --min-replicas.")
        if not 1 <= self.target_cpu_percent <= 100:
            raise ConfigError(f"--target-cpu must be 1-100 (percent), got {self.target_cpu_percent}.")

    @property
    def resource(self) -> str:
        if self.name:
            return self.name
        if self.model:
            return resource_name("-".join(p for p in (self.model, self.version) if p))
        repository = self.image.rsplit("/", 1)[-1].split("@")[0]  # registry.example/team/iris:v1 -> iris-v1
        return resource_name(repository.replace(":", "-"))

    @property
    def grace_seconds(self) -> int:
        """The termination grace period: the preStop pause, the node's drain, and a margin."""
        return self.pre_stop_seconds + DRAIN_SECONDS + 15

    def environment(self) -> dict[str, str]:
        """What the image's entrypoint reads: the version to name, the registry to serve, the user's extras.

        Model and version are set only when given: the image already names the version it was built for.
        """
        values: dict[str, str] = {}
        if self.model:
            values["CPRSDK_IMAGE_MODEL"] = self.model
        if self.version:
            values["CPRSDK_IMAGE_VERSION"] = self.version
        if self.registry:
            values["CPRSDK_REGISTRY"] = self.registry
        values.update(dict(self.env))
        return values

    def labels(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": self.resource, "app.kubernetes.io/managed-by": "cprsdk",
                "cprsdk.dev/model": resource_name(self.model or self.resource),
                "cprsdk.dev/version": resource_name(self.version or "image")}
