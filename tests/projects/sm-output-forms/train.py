"""Write model/model.joblib: a linear regression on three features."""
import os

import joblib
import numpy as np
from sklearn.linear_model import LinearRegression

rng = np.random.default_rng(2)
X = rng.normal(size=(100, 3))
y = X @ np.array([0.5, 1.0, -3.0]) + 2.0
os.makedirs("model", exist_ok=True)
joblib.dump(LinearRegression().fit(X, y), os.path.join("model", "model.joblib"))
