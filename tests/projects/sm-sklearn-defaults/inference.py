"""A SageMaker scikit-learn inference.py with model_fn only; the container's defaults do the rest.

JSON, CSV and NPY bodies are decoded into NumPy arrays (float32 from JSON and CSV), model.predict
scores them, and the prediction is encoded for the Accept header (JSON, CSV or NPY).
"""
import os

import joblib


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
