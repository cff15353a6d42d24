"""Laid over ok/: the predictor as scikit-learn 0.20-era tutorials wrote it (sklearn.externals is gone)."""
import os
import pickle

import numpy as np
from sklearn.externals import joblib


class MyPredictor:
    def __init__(self, scaler, offset):
        self._scaler = scaler
        self._offset = offset

    @classmethod
    def from_path(cls, model_dir):
        with open(os.path.join(model_dir, "scaler.pkl"), "rb") as f:
            scaler = pickle.load(f)
        return cls(scaler, float(np.load(os.path.join(model_dir, "offset.npy"))))

    def predict(self, instances, **kwargs):
        return joblib.hash(instances)
