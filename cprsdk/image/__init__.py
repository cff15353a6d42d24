"""Container images and what platforms need to run them.

``spec``: :class:`DeploySpec`, the common inputs; ``cloud``: Vertex AI and SageMaker request bodies;
``kube``: Kubernetes, KServe and Cloud Run objects; ``manifests``: render a target, write JSON or YAML.
"""
