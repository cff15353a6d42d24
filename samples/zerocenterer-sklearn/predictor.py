"""The custom prediction routine: a ZeroCenterer in front of a scikit-learn classifier."""

import os
import pickle

import joblib
import numpy as np

LABELS = ["setosa", "versicolor", "virginica"]


class MyPredictor:
    """Iris species from four measurements (cm): sepal length, sepal width, petal length, petal width."""

    def __init__(self, model, preprocessor):
        self._model = model
        self._preprocessor = preprocessor

    def predict(self, instances, **kwargs):
        inputs = self._preprocessor.preprocess(np.asarray(instances, dtype=float))
        if kwargs.get("probabilities"):
            return self._model.predict_proba(inputs)  # a NumPy array: the node converts it
        return [LABELS[int(i)] for i in self._model.predict(inputs)]

    @classmethod
    def from_path(cls, model_dir):
        model = joblib.load(os.path.join(model_dir, "model.joblib"))
        with open(os.path.join(model_dir, "preprocessor.pkl"), "rb") as f:
            preprocessor = pickle.load(f)
        return cls(model, preprocessor)
