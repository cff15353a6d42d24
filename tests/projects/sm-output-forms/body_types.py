"""Answers what input_fn was handed: str for application/json and text/csv, bytes otherwise."""
import json


def model_fn(model_dir):
    return None


def input_fn(input_data, content_type):
    return {"str": isinstance(input_data, str), "bytes": isinstance(input_data, bytes),
            "content_type": content_type, "length": len(input_data)}


def predict_fn(data, model):
    return data


def output_fn(prediction, accept):
    return json.dumps({**prediction, "accept": accept}), "application/json"
