"""Writes model/ for this scenario (run from the project folder)."""
import os
import pickle

import numpy as np

from scaler import Scaler

os.makedirs("model", exist_ok=True)
with open("model/scaler.pkl", "wb") as f:
    pickle.dump(Scaler(2.0), f)
np.save("model/offset.npy", np.array(0.5))
