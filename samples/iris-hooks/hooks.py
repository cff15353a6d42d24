"""A hook-style image classifier: is a picture mostly red, green or blue?

Only init and predict are written here. The steps left out are canned: an image/* body (PNG,
JPEG ...) is decoded by Pillow and resized to the model's input_shape, and predict's output (one
probability per class) goes to the output formatter chosen at deploy. With
`--output-formatter classification --formatter-args '{"num_preds": 3, "label": true}'` a PNG posted
to :rawPredict answers {"predictions": [{"probability": 0.93, "label": "red"}, ...]}, the labels
read from model/labels.json.

    python train.py && cprsdk package
    cprsdk local predict --raw inputs/red.png --content-type image/png \
        --output-formatter classification --formatter-args '{"num_preds": 3, "label": true}'
"""

import os

import joblib
import numpy as np

INPUT_SHAPE = (8, 8, 3)  # rows, columns, channels: every image is resized to this before predict


def init(model_dir):
    model = joblib.load(os.path.join(model_dir, "model.joblib"))
    model.input_shape = INPUT_SHAPE  # the canned image decoder reads it
    return model


def features(pixels):
    """An (8, 8, 3) array of 0-255 values -> one row of 192 values in 0-1 (train.py uses it too)."""
    return np.asarray(pixels, dtype=np.float32).reshape(1, -1) / 255.0


def predict(image, model):
    return model.predict_proba(features(image))[0]
