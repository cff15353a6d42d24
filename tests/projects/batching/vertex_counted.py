class VertexCounted:
    """A Vertex CPR class whose response has a field besides the predictions: it can never be split."""

    def load(self, artifacts_uri):
        pass

    def predict(self, body):
        return body["instances"]

    def postprocess(self, results):
        return {"predictions": results, "count": len(results)}
