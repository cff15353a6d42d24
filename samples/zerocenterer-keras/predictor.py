"""The custom prediction routine: a ZeroCenterer in front of a small Keras network."""

import os
import pickle

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported: no setup needed

import keras  # noqa: E402
import numpy as np  # noqa: E402

LABELS = ["setosa", "versicolor", "virginica"]


class MyPredictor:
    """Iris species from four measurements (cm): sepal length, sepal width, petal length, petal width."""

    def __init__(self, model, preprocessor):
        self._model = model
        self._preprocessor = preprocessor

    def predict(self, instances, **kwargs):
        inputs = self._preprocessor.preprocess(np.asarray(instances, dtype=float)).astype("float32")
        probabilities = self._model.predict(inputs, verbose=0)  # softmax outputs, one row per instance
        if kwargs.get("probabilities"):
            return probabilities.tolist()
        return [LABELS[int(i)] for i in np.argmax(probabilities, axis=1)]

    @classmethod
    def from_path(cls, model_dir):
        model = keras.saving.load_model(os.path.join(model_dir, "model.keras"))
        with open(os.path.join(model_dir, "preprocessor.pkl"), "rb") as f:
            preprocessor = pickle.load(f)
        return cls(model, preprocessor)
