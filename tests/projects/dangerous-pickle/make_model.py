"""Writes a pickle whose loading would call os.system (it is never loaded by the tests)."""
import os
import pickle

import numpy as np


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


os.makedirs("model", exist_ok=True)
with open("model/scaler.pkl", "wb") as f:
    pickle.dump(Payload(), f)
np.save("model/offset.npy", np.array(0.5))
