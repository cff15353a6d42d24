"""Container images and what platforms need to run them.

``spec``: :class:`DeploySpec`, the common inputs; ``cloud``: Vertex AI and SageMaker request bodies;
``kube``: Kubernetes, KServe and Cloud Run objects; ``manifests``: render a target, write JSON or YAML.
``context``: the build context of one version (``wheelhouse``: the wheels pip makes for it here;
``entrypoint``: the script the image starts; ``boot``: its warm-up and model fetch); ``docker``: the build.
"""
