"""A Vertex AI custom prediction routine, served by cprsdk unchanged (nothing here imports cprsdk).

It follows google.cloud.aiplatform.prediction.predictor.Predictor: load runs once; for each
request the whole body goes to preprocess, whose result goes to predict, whose result goes to
postprocess, which returns the response. The request's "parameters" choose how many species
come back per instance: {"instances": [[6.7, 3.0, 5.2, 2.3]], "parameters": {"top_k": 2}}.

    python train.py && cprsdk package
    cprsdk local predict --json-instances inputs/instances.jsonl --kwargs '{"parameters": {"top_k": 2}}'
"""

import json
import os

import joblib
import numpy as np


class IrisPredictor:
    def __init__(self):
        self._model = None
        self._labels = []

    def load(self, artifacts_uri):
        """artifacts_uri: the model directory (a local folder by the time cprsdk calls load)."""
        self._model = joblib.load(os.path.join(artifacts_uri, "model.joblib"))
        with open(os.path.join(artifacts_uri, "labels.json")) as f:
            self._labels = json.load(f)

    def preprocess(self, prediction_input):
        parameters = prediction_input.get("parameters") or {}
        top_k = int(parameters.get("top_k", 1))
        if not 1 <= top_k <= len(self._labels):
            raise ValueError(f"parameters.top_k must be from 1 to {len(self._labels)}, got {top_k}")
        return np.asarray(prediction_input["instances"], dtype=float), top_k

    def predict(self, instances):
        rows, top_k = instances
        probabilities = self._model.predict_proba(rows)
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top_k]
        return [[(self._labels[i], float(p[i])) for i in best] for p, best in zip(probabilities, order, strict=True)]

    def postprocess(self, prediction_results):
        return {"predictions": [[{"species": s, "probability": p} for s, p in top] for top in prediction_results]}
