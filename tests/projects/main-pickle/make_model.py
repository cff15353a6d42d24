"""Pickles a class defined right here, in __main__ (the classic mistake)."""
import os
import pickle

import numpy as np


class Scaler:
    def __init__(self, factor):
        self.factor = factor


os.makedirs("model", exist_ok=True)
with open("model/scaler.pkl", "wb") as f:
    pickle.dump(Scaler(2.0), f)
np.save("model/offset.npy", np.array(0.5))
