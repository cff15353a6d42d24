"""SageMaker functions that take the optional trailing context argument."""
import json

import tinymodel


def model_fn(model_dir, context):
    model = tinymodel.load(model_dir)
    model.where = context.model_dir
    return model


def transform_fn(model, body, content_type, accept, context):
    rows = json.loads(body)["instances"]
    return json.dumps({"predictions": model.predict(rows).tolist(), "accept": context.accept_header})
