"""output_fn answers a bare body; its content type is the Accept type."""
import json
import os

import joblib


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def output_fn(prediction, accept):
    if accept == "text/csv":
        return "".join(f"{v}\n" for v in prediction).encode()
    return json.dumps(prediction.tolist())
