"""torch.save of a plain state dict (accepted: only torch and collections are referenced)."""
import os
import pickle

import numpy as np
import torch

from scaler import Scaler

os.makedirs("model", exist_ok=True)
with open("model/scaler.pkl", "wb") as f:
    pickle.dump(Scaler(2.0), f)
np.save("model/offset.npy", np.array(0.5))
torch.save(torch.nn.Linear(2, 1).state_dict(), "model/weights.pth")
