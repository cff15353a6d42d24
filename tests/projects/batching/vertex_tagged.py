class VertexTagged:
    """A Vertex CPR class: preprocess keeps the instances and parameters, postprocess wraps the outputs."""

    def load(self, artifacts_uri):
        self.prefix = "v"

    def preprocess(self, body):
        return body["instances"], body.get("parameters") or {}

    def predict(self, prepared):
        instances, parameters = prepared
        return [[self.prefix, i, parameters] for i in instances]

    def postprocess(self, results):
        return {"predictions": results}
