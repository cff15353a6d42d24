"""Writes model/model.joblib: a scikit-learn pipeline whose first step is clipper.Clip."""
import os

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from clipper import Clip

X, y = load_iris(return_X_y=True)
pipeline = Pipeline([("clip", Clip(0.5, 6.5)), ("model", LogisticRegression(max_iter=500))]).fit(X, y)
os.makedirs("model", exist_ok=True)
joblib.dump(pipeline, "model/model.joblib")
