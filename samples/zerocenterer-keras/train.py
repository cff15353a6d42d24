"""Train the sample: writes model/model.keras, model/preprocessor.pkl and sample.jsonl beside this file.

Keras runs on the PyTorch backend (CPU) unless KERAS_BACKEND says otherwise; seeds are fixed, so
two runs on the same machine give the same model.
"""

import json
import os
import pickle
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported

import keras  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402

from preprocess import ZeroCenterer  # noqa: E402

HERE = Path(__file__).resolve().parent


def build_model():
    """Four measurements in, one probability per species out."""
    model = keras.Sequential([
        keras.Input(shape=(4,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.02),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main():
    keras.utils.set_random_seed(0)
    features, labels = load_iris(return_X_y=True)
    preprocessor = ZeroCenterer()
    inputs = preprocessor.preprocess(features).astype("float32")
    model = build_model()
    model.fit(inputs, labels, epochs=60, batch_size=16, verbose=0)
    _, accuracy = model.evaluate(inputs, labels, verbose=0)
    model_dir = HERE / "model"
    model_dir.mkdir(exist_ok=True)
    model.save(model_dir / "model.keras")
    with open(model_dir / "preprocessor.pkl", "wb") as f:
        pickle.dump(preprocessor, f)
    rows = features[::30].tolist()  # one line per instance, for --json-instances
    (HERE / "sample.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {model_dir} and sample.jsonl ({len(rows)} instances); training accuracy {accuracy:.2f}")


if __name__ == "__main__":
    main()
