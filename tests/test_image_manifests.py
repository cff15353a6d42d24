"""`cprsdk image manifests`: each target's output is accepted by that platform's own client library.

SageMaker requests go through botocore's parameter validation against the sagemaker service model;
Vertex AI bodies are parsed into google-cloud-aiplatform's protos with unknown fields refused;
Kubernetes, KServe and Cloud Run objects are deserialized into the kubernetes client's models and
serialized back, so a misspelt or misplaced field (which the models drop) shows up as a difference.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import botocore.session  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]
from botocore.validate import validate_parameters  # type: ignore[import-untyped]
from google.protobuf import json_format
from kubernetes.client import ApiClient  # type: ignore[import-untyped]

from cprsdk.cli import main
from cprsdk.errors import ConfigError
from cprsdk.image.manifests import TARGETS, dump, render
from cprsdk.image.spec import DRAIN_SECONDS, DeploySpec

# typed, but importing it as a module would change how mypy sees the untyped google.cloud.storage elsewhere
_vertex: Any = importlib.import_module("google.cloud.aiplatform_v1.types")
UploadModelRequest, DeployModelRequest = _vertex.UploadModelRequest, _vertex.DeployModelRequest
SPEC = DeploySpec(image="europe-docker.pkg.dev/p/r/iris:1", model="Iris", version="V1", min_replicas=2,
                  max_replicas=5, env=(("LOG_LEVEL", "debug"),))


class _Response:
    def __init__(self, obj: Any) -> None:
        self.data = json.dumps(obj)


def _k8s_roundtrip(obj: Any, model: str) -> Any:
    client = ApiClient()
    return client.sanitize_for_serialization(client.deserialize(_Response(obj), model))


def test_sagemaker_requests_pass_botocore_validation() -> None:
    spec = DeploySpec(image="123.dkr.ecr.us-east-1.amazonaws.com/iris:1", model="iris", version="v1",
                      model_uri="s3://bucket/iris/model.tar.gz", role_arn="arn:aws:iam::123:role/sm")
    service = botocore.session.get_session().get_service_model("sagemaker")
    requests = render("sagemaker", spec)
    ops = {"sagemaker-create-model": "CreateModel", "sagemaker-create-endpoint-config": "CreateEndpointConfig",
           "sagemaker-create-endpoint": "CreateEndpoint"}
    assert list(requests) == list(ops)
    for stem, op in ops.items():
        validate_parameters(requests[stem], service.operation_model(op).input_shape)  # raises on any mistake
    container = requests["sagemaker-create-model"]["PrimaryContainer"]
    assert container["Image"] == spec.image
    assert container["ModelDataUrl"] == "s3://bucket/iris/model.tar.gz"
    assert container["Environment"]["CPRSDK_IMAGE_MODEL"] == "iris"
    variant = requests["sagemaker-create-endpoint-config"]["ProductionVariants"][0]
    assert variant["ModelName"] == requests["sagemaker-create-model"]["ModelName"] == "iris-v1"


def test_botocore_validation_catches_a_misspelt_field() -> None:
    """The check above can fail: a wrong field name is refused."""
    from botocore.exceptions import ParamValidationError  # type: ignore[import-untyped]

    service = botocore.session.get_session().get_service_model("sagemaker")
    bad = {"ModelName": "m", "PrimaryContainer": {"ImageUri": "x"}}
    with pytest.raises(ParamValidationError, match="ImageUri"):
        validate_parameters(bad, service.operation_model("CreateModel").input_shape)


def test_vertex_bodies_parse_into_the_aiplatform_protos() -> None:
    spec = DeploySpec(image="us-docker.pkg.dev/p/r/iris:1", model="iris", model_uri="gs://b/iris/model",
                      project="my-proj", region="europe-west4", port=9000)
    bodies = render("vertex", spec)
    upload = json_format.ParseDict(bodies["vertex-upload-model"], UploadModelRequest.pb(UploadModelRequest()))
    container = upload.model.container_spec
    assert container.image_uri == spec.image
    assert [p.container_port for p in container.ports] == [9000]
    assert container.predict_route and container.health_route
    assert upload.model.artifact_uri == "gs://b/iris/model"  # Vertex AI hands it over as AIP_STORAGE_URI
    assert not any(e.name.startswith("AIP_") for e in container.env)  # Vertex AI sets those itself
    deploy = json_format.ParseDict(bodies["vertex-deploy-model"], DeployModelRequest.pb(DeployModelRequest()))
    resources = deploy.deployed_model.dedicated_resources
    assert resources.machine_spec.machine_type == "n1-standard-2"
    assert (resources.min_replica_count, resources.max_replica_count) == (1, 3)
    assert deploy.deployed_model.model == f"projects/my-proj/locations/europe-west4/models/{upload.model_id}"


def test_vertex_parse_refuses_unknown_fields() -> None:
    body = render("vertex", SPEC)["vertex-upload-model"]
    body["model"]["containerSpec"]["healthPath"] = "/x"
    with pytest.raises(json_format.ParseError, match="healthPath"):
        json_format.ParseDict(body, UploadModelRequest.pb(UploadModelRequest()))


def test_kubernetes_objects_roundtrip_through_the_client_models() -> None:
    objects = render("kubernetes", SPEC)
    models = {"kubernetes-deployment": "V1Deployment", "kubernetes-service": "V1Service",
              "kubernetes-hpa": "V2HorizontalPodAutoscaler", "kubernetes-pdb": "V1PodDisruptionBudget"}
    assert list(objects) == list(models)
    for stem, model in models.items():
        assert _k8s_roundtrip(objects[stem], model) == objects[stem], stem
    assert [o["apiVersion"] for o in objects.values()] == ["apps/v1", "v1", "autoscaling/v2", "policy/v1"]


def test_roundtrip_catches_a_misplaced_field() -> None:
    deployment = render("kubernetes", SPEC)["kubernetes-deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessPath"] = "/readyz"
    assert _k8s_roundtrip(deployment, "V1Deployment") != deployment


def test_deployment_probes_and_shutdown_fit_the_node() -> None:
    pod = render("kubernetes", SPEC)["kubernetes-deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > pause + DRAIN_SECONDS
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["CPRSDK_HOST"] == "0.0.0.0" and env["LOG_LEVEL"] == "debug"
    hpa = render("kubernetes", SPEC)["kubernetes-hpa"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 5)


def test_kserve_inference_service() -> None:
    spec = DeploySpec(image="ghcr.io/o/iris:1", model="iris", model_uri="gs://b/iris/model", namespace="ml")
    isvc = render("kserve", spec)["kserve-inferenceservice"]
    assert (isvc["apiVersion"], isvc["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    assert _k8s_roundtrip(isvc["metadata"], "V1ObjectMeta") == isvc["metadata"]
    assert isvc["metadata"]["namespace"] == "ml"
    container = isvc["spec"]["predictor"]["containers"][0]
    assert _k8s_roundtrip(container, "V1Container") == container
    # the predictor is a pod spec (inlined) plus KServe's component fields
    pod = {k: v for k, v in isvc["spec"]["predictor"].items() if k not in ("minReplicas", "maxReplicas")}
    assert _k8s_roundtrip(pod, "V1PodSpec") == pod
    assert container["name"] == "kserve-container"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["STORAGE_URI"] == "gs://b/iris/model"
    assert env["CPRSDK_IMAGE_MODEL"] == "iris"  # KServe V1 clients call /v1/models/iris:predict


def test_cloudrun_service() -> None:
    service = render("cloudrun", SPEC)["cloudrun-service"]
    assert (service["apiVersion"], service["kind"]) == ("serving.knative.dev/v1", "Service")
    container = service["spec"]["template"]["spec"]["containers"][0]
    assert _k8s_roundtrip(container, "V1Container") == container
    assert container["ports"][0]["containerPort"] == 8080
    assert container["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert service["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/maxScale"] == "5"


@pytest.mark.parametrize("target", TARGETS)
def test_yaml_and_json_streams_load_back(target: str) -> None:
    objects = render(target, SPEC)
    assert list(yaml.safe_load_all(dump(objects, fmt="yaml"))) == list(objects.values())
    decoder, text, docs = json.JSONDecoder(), dump(objects, fmt="json"), []
    index = 0
    while text[index:].strip():
        doc, index = decoder.raw_decode(text, index)
        docs.append(doc)
        index += 1
    assert docs == list(objects.values())


def test_cli_writes_one_file_per_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["image", "manifests", "--target", "kubernetes", "--image", "reg/iris:1", "--model", "iris",
                 "--out", str(tmp_path / "k8s")])
    assert code == 0
    names = sorted(p.name for p in (tmp_path / "k8s").iterdir())
    assert names == ["kubernetes-deployment.yaml", "kubernetes-hpa.yaml", "kubernetes-pdb.yaml",
                     "kubernetes-service.yaml"]
    captured = capsys.readouterr()
    assert "kubectl apply -f" in captured.err
    assert yaml.safe_load((tmp_path / "k8s" / "kubernetes-service.yaml").read_text())["kind"] == "Service"


def test_cli_prints_json_for_sagemaker(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["image", "manifests", "--target", "sagemaker", "--image", "reg/iris:1", "--name", "iris-prod"]) == 0
    first, _ = json.JSONDecoder().raw_decode(capsys.readouterr().out)
    assert first["ModelName"] == "iris-prod"


def test_bad_inputs_say_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["image", "manifests", "--target", "kserve", "--image", "x", "--name", "Bad_Name"]) == 1
    assert "--name 'Bad_Name' is not a DNS-1123 label" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="min"):
        DeploySpec(image="x", min_replicas=3, max_replicas=2)


def test_without_model_the_image_decides_what_it_serves() -> None:
    """An image from `cprsdk image build` names its version itself; the manifests do not override it."""
    spec = DeploySpec(image="registry.example/team/iris:v7")
    assert spec.resource == "iris-v7"
    env = render("sagemaker", spec)["sagemaker-create-model"]["PrimaryContainer"]["Environment"]
    assert "CPRSDK_IMAGE_MODEL" not in env and "CPRSDK_IMAGE_VERSION" not in env
    deployment = render("kubernetes", spec)["kubernetes-deployment"]
    assert _k8s_roundtrip(deployment, "V1Deployment") == deployment
