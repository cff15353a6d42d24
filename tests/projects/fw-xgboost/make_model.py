"""Writes model/model.bst: an XGBoost Booster trained in a second (no code package at all)."""
import os

import numpy as np
import xgboost

rng = np.random.default_rng(0)
X = rng.normal(size=(200, 4))
y = (X[:, 0] + X[:, 1] > 0).astype(int)
booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3}, xgboost.DMatrix(X, label=y), 10)
os.makedirs("model", exist_ok=True)
booster.save_model("model/model.bst")
