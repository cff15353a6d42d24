"""Vertex AI and SageMaker: the request bodies their APIs take, as plain dicts.

Vertex AI: a ``models.upload`` body (``UploadModelRequest`` less its ``parent``) and an
``endpoints.deployModel`` body (``DeployModelRequest`` less its ``endpoint``). Vertex AI sets the
``AIP_*`` variables itself from the container spec (port, routes, ``artifactUri``), so none is set here.
SageMaker: the ``CreateModel``, ``CreateEndpointConfig`` and ``CreateEndpoint`` requests, each as
``aws sagemaker <op> --cli-input-json`` takes it. SageMaker runs the image as ``IMAGE serve`` on 8080 and
unpacks ``ModelDataUrl`` into /opt/ml/model, where the image's entrypoint looks first.
"""

from __future__ import annotations

from typing import Any

from cprsdk.image.spec import DeploySpec

__all__ = ["sagemaker", "vertex"]

VERTEX_PREDICT_ROUTE = "/predict"
VERTEX_HEALTH_ROUTE = "/health"


def _vertex_model(spec: DeploySpec) -> dict[str, Any]:
    container = {
        "imageUri": spec.image,
        "ports": [{"containerPort": spec.port}],
        "predictRoute": VERTEX_PREDICT_ROUTE,
        "healthRoute": VERTEX_HEALTH_ROUTE,
        "env": [{"name": k, "value": v} for k, v in spec.environment().items()],
    }
    model: dict[str, Any] = {"displayName": spec.resource, "containerSpec": container,
                             "labels": {"cprsdk-model": spec.labels()["cprsdk.dev/model"]}}
    if spec.model_uri:
        model["artifactUri"] = spec.model_uri
    return model


def vertex(spec: DeploySpec) -> dict[str, dict[str, Any]]:
    """``{file stem: body}`` for ``models.upload`` then ``endpoints.deployModel``."""
    model_name = f"projects/{spec.project}/locations/{spec.region}/models/{spec.resource}"
    deployed = {
        "model": model_name,
        "displayName": spec.resource,
        "dedicatedResources": {
            "machineSpec": {"machineType": spec.machine_type},
            "minReplicaCount": spec.min_replicas,
            "maxReplicaCount": spec.max_replicas,
            "autoscalingMetricSpecs": [{
                "metricName": "aiplatform.googleapis.com/prediction/online/cpu/utilization",
                "target": spec.target_cpu_percent,
            }],
        },
    }
    return {
        "vertex-upload-model": {"modelId": spec.resource, "model": _vertex_model(spec)},
        "vertex-deploy-model": {"deployedModel": deployed, "trafficSplit": {"0": 100}},
    }


def sagemaker(spec: DeploySpec) -> dict[str, dict[str, Any]]:
    """``{file stem: request}`` for CreateModel, CreateEndpointConfig and CreateEndpoint, in that order."""
    container: dict[str, Any] = {"Image": spec.image, "Mode": "SingleModel", "Environment": spec.environment()}
    if spec.model_uri:
        container["ModelDataUrl"] = spec.model_uri
    model: dict[str, Any] = {"ModelName": spec.resource, "PrimaryContainer": container}
    if spec.role_arn:
        model["ExecutionRoleArn"] = spec.role_arn
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": spec.resource,
        "InitialInstanceCount": spec.min_replicas,
        "InstanceType": spec.instance_type,
        "InitialVariantWeight": 1.0,
        "ContainerStartupHealthCheckTimeoutInSeconds": 600,
    }
    return {
        "sagemaker-create-model": model,
        "sagemaker-create-endpoint-config": {"EndpointConfigName": spec.resource, "ProductionVariants": [variant]},
        "sagemaker-create-endpoint": {"EndpointName": spec.resource, "EndpointConfigName": spec.resource},
    }
