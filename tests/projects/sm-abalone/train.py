"""Write model/model.joblib: the featurizer (scaled measurements, one-hot sex), fitted on made-up abalones."""
import os

import joblib
import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder, StandardScaler

rng = np.random.default_rng(1)
rows = np.empty((300, 8), dtype=object)
rows[:, 0] = rng.choice(["M", "F", "I"], size=300)
rows[:, 1:] = np.round(rng.uniform(0.05, 0.8, size=(300, 7)), 4)
featurizer = ColumnTransformer([("num", StandardScaler(), list(range(1, 8))),
                                ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), [0])],
                               sparse_threshold=0)
featurizer.fit(rows)
os.makedirs("model", exist_ok=True)
joblib.dump(featurizer, os.path.join("model", "model.joblib"))
