"""An abalone featurizer, written like the one in SageMaker's scikit-learn inference pipeline example.

SageMaker hands input_fn a str for text/csv and application/json, so the rows are read through
StringIO. Rows carry the 8 features and, when labelled, the rings label last; predict_fn
transforms the features and puts the label back in front. output_fn answers with the
container's own worker.Response: JSON {"instances": [{"features": [...]}, ...]} for the next
container of a pipeline, or CSV.
"""
import csv
import json
import os
from io import StringIO

import joblib
import numpy as np
from sagemaker_containers.beta.framework import content_types, encoders, worker

feature_columns_names = ["sex", "length", "diameter", "height", "whole_weight", "shucked_weight",
                         "viscera_weight", "shell_weight"]
label_column = "rings"


def _table(rows):
    table = np.asarray(rows, dtype=object)
    if table.ndim != 2 or table.shape[1] not in (len(feature_columns_names), len(feature_columns_names) + 1):
        raise ValueError(f"each row needs the {len(feature_columns_names)} features, then optionally {label_column}")
    return table


def input_fn(input_data, content_type):
    if content_type == content_types.CSV:
        return _table([row for row in csv.reader(StringIO(input_data)) if row])
    if content_type == content_types.JSON:
        return _table(json.load(StringIO(input_data)))
    raise ValueError(f"{content_type} not supported by script!")


def output_fn(prediction, accept):
    if accept == content_types.JSON:
        instances = [{"features": row} for row in prediction.tolist()]
        return worker.Response(json.dumps({"instances": instances}), mimetype=accept)
    if accept == content_types.CSV:
        return worker.Response(encoders.encode(prediction, accept), mimetype=accept)
    raise RuntimeError(f"{accept} accept type is not supported by this script.")


def predict_fn(input_data, model):
    features = model.transform(input_data[:, :len(feature_columns_names)])
    if input_data.shape[1] > len(feature_columns_names):
        return np.insert(features, 0, input_data[:, -1].astype(float), axis=1)
    return features


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
