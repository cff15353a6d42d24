"""Writes model/ with real models of each framework (all must pass the pickle allowlist)."""
import collections
import datetime
import os
import pickle

import joblib
import numpy as np
import scipy.sparse
import torch
import xgboost
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from scaler import Scaler
from transforms import Clip, Net, shift

rng = np.random.default_rng(0)
X, y = rng.normal(size=(60, 3)), np.array([0, 1] * 30)
os.makedirs("model", exist_ok=True)
with open("model/scaler.pkl", "wb") as f:
    pickle.dump(Scaler(2.0), f)
np.save("model/offset.npy", np.array(0.5))
pipeline = make_pipeline(Clip(-2.0, 2.0), FunctionTransformer(shift), StandardScaler(), LogisticRegression()).fit(X, y)
joblib.dump(pipeline, "model/pipeline.joblib")
joblib.dump(RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y), "model/forest.joblib", compress=3)
with open("model/xgb.pkl", "wb") as f:
    pickle.dump(xgboost.XGBClassifier(n_estimators=3).fit(X, y), f)
xgboost.train({}, xgboost.DMatrix(X, label=y), 2).save_model("model/booster.json")
torch.save(Net().state_dict(), "model/state.pth")
torch.save(Net(), "model/net.pt")
misc = {"od": collections.OrderedDict(a=1), "dd": collections.defaultdict(list), "counts": collections.Counter("ab"),
        "when": datetime.datetime(2024, 1, 1), "delta": datetime.timedelta(1), "set": {1}, "fs": frozenset({2}),
        "raw": bytearray(b"x"), "z": 1j, "cut": slice(1, 2), "span": range(3), "day": np.datetime64("2024-01-01"),
        "rs": np.random.RandomState(0), "gen": np.random.default_rng(1), "sparse": scipy.sparse.csr_matrix(np.eye(3)),
        "masked": np.ma.masked_array([1, 2], [0, 1]), "objects": np.array(["a", None], dtype=object)}
for protocol in (0, 2, 5):
    with open(f"model/misc-{protocol}.bin", "wb") as f:  # no pickle suffix: found by content
        pickle.dump(misc, f, protocol=protocol)
