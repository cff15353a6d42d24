"""SageMaker handler module with every function, scoring CSV rows, answering JSON."""
import io
import json

import numpy as np

import tinymodel


def model_fn(model_dir):
    return tinymodel.load(model_dir)


def input_fn(body, content_type):
    if content_type.startswith("text/csv"):
        return np.loadtxt(io.StringIO(body.decode()), delimiter=",", ndmin=2)
    data = json.loads(body)  # the instances list on JSON routes; {"instances": ...} sent raw
    return np.asarray(data["instances"] if isinstance(data, dict) else data, dtype=float)


def predict_fn(data, model):
    return model.predict(data)


def output_fn(prediction, accept):
    return json.dumps({"scores": prediction.tolist()}), "application/json"
