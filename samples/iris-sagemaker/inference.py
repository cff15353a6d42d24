"""A SageMaker scikit-learn inference.py, served by cprsdk unchanged (nothing here imports cprsdk).

model_fn loads the model once; for each request input_fn decodes the body by its Content-Type
(CSV rows, or JSON: {"instances": rows} as a :predict body sends it, or bare rows), predict_fn
scores it and output_fn answers JSON, one object per row.

    python train.py && cprsdk package
    cprsdk local predict --raw inputs/rows.csv --content-type text/csv --accept application/json
    cprsdk local predict --json-instances inputs/instances.jsonl
"""

import csv
import io
import json
import os

import joblib
import numpy as np

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def input_fn(request_body, request_content_type):
    kind = request_content_type.split(";")[0].strip().lower()
    if kind == "text/csv":
        text = request_body if isinstance(request_body, str) else request_body.decode("utf-8")  # str on SageMaker
        rows = [r for r in csv.reader(io.StringIO(text)) if r]
        if rows and rows[0][0].strip() == FEATURES[0]:  # an optional header line
            rows = rows[1:]
        return np.asarray(rows, dtype=float).reshape(-1, len(FEATURES))
    if kind == "application/json":
        data = json.loads(request_body)
        rows = data["instances"] if isinstance(data, dict) else data
        return np.asarray(rows, dtype=float).reshape(-1, len(FEATURES))
    raise ValueError(f"Unsupported content type {request_content_type!r}: send text/csv or application/json.")


def predict_fn(input_data, model):
    return model.predict(input_data), model.predict_proba(input_data).max(axis=1)


def output_fn(prediction, accept):
    if accept.split(";")[0].strip().lower() not in ("application/json", "*/*", ""):
        raise ValueError(f"Unsupported Accept {accept!r}: this model answers application/json.")
    species, confidence = prediction
    rows = [{"species": str(s), "confidence": float(c)} for s, c in zip(species, confidence, strict=True)]
    return json.dumps(rows), "application/json"
