"""Kubernetes, KServe and Cloud Run: objects as ``kubectl apply`` / ``gcloud run services replace`` take them.

One container shape serves all three: the node's port, readiness on ``/readyz`` (503 while a version
loads and as soon as SIGTERM arrives), liveness on ``/healthz``, and for a Deployment a ``preStop``
pause so the endpoints controller removes the pod before the node stops accepting connections; the
grace period covers that pause plus the node's drain.
"""

from __future__ import annotations

from typing import Any

from cprsdk.image.spec import DeploySpec

__all__ = ["cloudrun", "kserve", "kubernetes"]

# KServe requires this name for the predictor's custom container.
KSERVE_CONTAINER = "kserve-container"
# Where KServe's storage initializer puts STORAGE_URI for a custom container; the entrypoint looks there.
KSERVE_MODEL_DIR = "/mnt/models"


def _probe(path: str, port: int, *, period: int, failures: int, initial: int = 0) -> dict[str, Any]:
    probe: dict[str, Any] = {"httpGet": {"path": path, "port": port}, "periodSeconds": period,
                             "timeoutSeconds": 2, "failureThreshold": failures}
    if initial:
        probe["initialDelaySeconds"] = initial
    return probe


def _metadata(spec: DeploySpec, name: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name or spec.resource, "labels": spec.labels()}
    if spec.namespace:
        meta["namespace"] = spec.namespace
    return meta


def _container(spec: DeploySpec, *, name: str, env: dict[str, str], port_name: str = "http") -> dict[str, Any]:
    return {
        "name": name,
        "image": spec.image,
        "ports": [{"name": port_name, "containerPort": spec.port, "protocol": "TCP"}],
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "resources": {"requests": {"cpu": spec.cpu, "memory": spec.memory}, "limits": {"memory": spec.memory}},
        # loading a model may take minutes: startup allows 10 minutes before liveness counts
        "startupProbe": _probe("/healthz", spec.port, period=5, failures=120),
        "readinessProbe": _probe("/readyz", spec.port, period=5, failures=2),
        "livenessProbe": _probe("/healthz", spec.port, period=10, failures=3),
    }


def _deployment(spec: DeploySpec) -> dict[str, Any]:
    env = {"CPRSDK_HOST": "0.0.0.0", "CPRSDK_PORT": str(spec.port), **spec.environment()}
    container = _container(spec, name="node", env=env)
    container["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", str(spec.pre_stop_seconds)]}}}
    selector = {"app.kubernetes.io/name": spec.resource}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _metadata(spec),
        "spec": {
            "replicas": spec.min_replicas,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": spec.labels()},
                "spec": {
                    "terminationGracePeriodSeconds": spec.grace_seconds,
                    "securityContext": {"runAsNonRoot": True},
                    "containers": [container],
                },
            },
        },
    }


def _service(spec: DeploySpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": _metadata(spec),
        "spec": {"type": "ClusterIP", "selector": {"app.kubernetes.io/name": spec.resource},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]},
    }


def _autoscaler(spec: DeploySpec) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": _metadata(spec),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.resource},
            "minReplicas": spec.min_replicas, "maxReplicas": spec.max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": spec.target_cpu_percent}}}],
        },
    }


def _disruption_budget(spec: DeploySpec) -> dict[str, Any]:
    budget = {"maxUnavailable": 1} if spec.min_replicas > 1 else {"minAvailable": 0}
    return {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": _metadata(spec),
        "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": spec.resource}}, **budget},
    }


def kubernetes(spec: DeploySpec) -> dict[str, dict[str, Any]]:
    """``{file stem: object}``: Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget."""
    return {
        "kubernetes-deployment": _deployment(spec),
        "kubernetes-service": _service(spec),
        "kubernetes-hpa": _autoscaler(spec),
        "kubernetes-pdb": _disruption_budget(spec),
    }


def kserve(spec: DeploySpec) -> dict[str, dict[str, Any]]:
    """A serving.kserve.io/v1beta1 InferenceService with a custom predictor container.

    KServe V1 clients call ``/v1/models/<model>:predict``, so the node serves the version under
    ``spec.model``; a ``model_uri`` becomes ``STORAGE_URI``, which KServe downloads into /mnt/models.
    """
    env = {"CPRSDK_HOST": "0.0.0.0", "CPRSDK_PORT": str(spec.port), **spec.environment()}
    if spec.model_uri:
        env["STORAGE_URI"] = spec.model_uri
    container = _container(spec, name=KSERVE_CONTAINER, env=env)
    service = {
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": _metadata(spec),
        "spec": {"predictor": {
            "minReplicas": spec.min_replicas, "maxReplicas": spec.max_replicas,
            "terminationGracePeriodSeconds": spec.grace_seconds,
            "containers": [container],
        }},
    }
    return {"kserve-inferenceservice": service}


def cloudrun(spec: DeploySpec) -> dict[str, dict[str, Any]]:
    """A serving.knative.dev/v1 Service as ``gcloud run services replace`` takes it.

    Cloud Run sets ``PORT`` to the container port; the entrypoint listens there.
    """
    env = spec.environment()
    container = _container(spec, name="node", env=env, port_name="http1")
    del container["readinessProbe"]  # Cloud Run takes startup and liveness probes
    container["resources"] = {"limits": {"cpu": spec.cpu, "memory": spec.memory}}
    container["startupProbe"] = _probe("/readyz", spec.port, period=5, failures=120)
    annotations = {"autoscaling.knative.dev/minScale": str(spec.min_replicas),
                   "autoscaling.knative.dev/maxScale": str(spec.max_replicas)}
    service = {
        "apiVersion": "serving.knative.dev/v1", "kind": "Service",
        "metadata": {"name": spec.resource, "labels": {"cprsdk-model": spec.labels()["cprsdk.dev/model"]}},
        "spec": {"template": {
            "metadata": {"annotations": annotations},
            "spec": {"containerConcurrency": 16, "timeoutSeconds": 300, "containers": [container]},
        }},
    }
    return {"cloudrun-service": service}
