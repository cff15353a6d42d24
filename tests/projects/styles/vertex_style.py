"""A Vertex AI custom prediction routine class: load, preprocess, predict, postprocess."""
import numpy as np

import tinymodel


class VertexPredictor:
    def load(self, artifacts_uri):
        self._model = tinymodel.load(artifacts_uri)

    def preprocess(self, prediction_input):
        self._scale = float(prediction_input.get("parameters", {}).get("scale", 1.0))
        return np.asarray(prediction_input["instances"], dtype=float)

    def predict(self, instances):
        return self._model.predict(instances) * self._scale

    def postprocess(self, prediction_results):
        return {"predictions": prediction_results.tolist()}
