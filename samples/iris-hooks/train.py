"""Train the sample: a tiny classifier of synthetic red, green and blue pictures. No downloads.

Draws noisy pictures of random sizes whose dominant channel is the label (fixed seed, so the
model is the same every run), resizes each to hooks.INPUT_SHAPE exactly as the canned image
decoder will, and fits a logistic regression on the pixels. Writes model/model.joblib,
model/labels.json (in predict_proba's column order) and three unseen pictures,
inputs/red.png, inputs/green.png and inputs/blue.png, beside this file.
"""

import json
from pathlib import Path

import joblib
import numpy as np
from PIL import Image
from sklearn.linear_model import LogisticRegression

from hooks import INPUT_SHAPE, features

HERE = Path(__file__).resolve().parent
LABELS = ["red", "green", "blue"]  # label i is dominant in channel i


def picture(rng, label, size):
    colour = rng.integers(0, 120, size=3)
    colour[label] = rng.integers(140, 256)
    pixels = colour + rng.normal(0.0, 30.0, size=(size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def as_decoded(image):
    """What the node's image decoder hands to predict: RGB, resized to (columns, rows), float32."""
    rows, columns, _ = INPUT_SHAPE
    return np.asarray(image.convert("RGB").resize((columns, rows)), dtype="float32")


def main():
    rng = np.random.default_rng(0)
    labels = [i for i in range(len(LABELS)) for _ in range(60)]
    pictures = [picture(rng, label, int(rng.integers(12, 48))) for label in labels]
    data = np.vstack([features(as_decoded(p)) for p in pictures])
    model = LogisticRegression(max_iter=1000).fit(data, labels)
    model_dir = HERE / "model"
    model_dir.mkdir(exist_ok=True)
    joblib.dump(model, model_dir / "model.joblib")
    (model_dir / "labels.json").write_text(json.dumps([LABELS[int(i)] for i in model.classes_]))
    inputs = HERE / "inputs"
    inputs.mkdir(exist_ok=True)
    for i, name in enumerate(LABELS):
        picture(rng, i, 32).save(inputs / f"{name}.png")
    print(f"wrote {model_dir} ({len(pictures)} training pictures) and {inputs}")


if __name__ == "__main__":
    main()
