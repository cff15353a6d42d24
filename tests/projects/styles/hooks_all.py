"""Hook-style module overriding every step."""
import json

import tinymodel


def init(model_dir):
    return tinymodel.load(model_dir)


def preprocess(raw, model):
    return [json.loads(raw)]


def predict(data, model):
    return model.predict(data)


def postprocess(output, raw_input):
    return {"value": float(output[0]), "echo": json.loads(raw_input)}
