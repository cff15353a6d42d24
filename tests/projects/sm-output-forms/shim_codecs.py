"""input_fn and output_fn written with the container's own encoders, as its defaults are."""
import os

import joblib
from sagemaker_containers.beta.framework import encoders, worker


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def input_fn(input_data, content_type):
    return encoders.decode(input_data, content_type)


def output_fn(prediction, accept):
    return worker.Response(encoders.encode(prediction, accept), mimetype=accept)
