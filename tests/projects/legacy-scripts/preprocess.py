import numpy as np


class ZeroCenterer:
    """Stores the means of the training data and subtracts them from every input."""

    def __init__(self):
        self._means = None

    def preprocess(self, data):
        if self._means is None:  # during training only
            self._means = np.mean(data, axis=0)
        return data - self._means
