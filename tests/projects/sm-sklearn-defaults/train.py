"""Write model/model.joblib: a linear regression on three features."""
import os

import joblib
import numpy as np
from sklearn.linear_model import LinearRegression

rng = np.random.default_rng(0)
X = rng.normal(size=(200, 3))
y = X @ np.array([1.5, -2.0, 0.25]) + 0.1 * rng.normal(size=200)
os.makedirs("model", exist_ok=True)
joblib.dump(LinearRegression().fit(X, y), os.path.join("model", "model.joblib"))
