"""output_fn answers a worker.Response with an error status when a score is out of range."""
import json
import os

import joblib
from sagemaker_containers.beta.framework import worker


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def output_fn(prediction, accept):
    if (abs(prediction) > 100).any():
        return worker.Response(json.dumps({"error": "a score is out of range"}), status=422)
    return worker.Response(json.dumps(prediction.tolist()), mimetype="application/json")
