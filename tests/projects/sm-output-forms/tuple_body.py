"""output_fn answers (body, content_type), the form SageMaker's containers keep for compatibility."""
import json
import os

import joblib


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def output_fn(prediction, accept):
    if accept == "text/csv":
        return "".join(f"{v}\n" for v in prediction), "text/csv"
    return json.dumps(prediction.tolist()), "application/json"
