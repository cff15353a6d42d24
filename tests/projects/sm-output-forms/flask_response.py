"""output_fn answers a flask.Response, as the current abalone featurizer example does."""
import json
import os

import flask
import joblib


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def output_fn(prediction, accept):
    if accept == "text/csv":
        return flask.Response(response="".join(f"{v}\n" for v in prediction), mimetype="text/csv")
    return flask.Response(response=json.dumps(prediction.tolist()), mimetype="application/json")
