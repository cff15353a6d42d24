"""A stateful preprocessor: remembers the column means seen in training and subtracts them."""

import numpy as np


class ZeroCenterer:
    """Centres each column on the mean it had in the training data."""

    def __init__(self):
        self._means = None

    def preprocess(self, data):
        data = np.asarray(data, dtype=float)
        if self._means is None:  # only while training
            self._means = np.mean(data, axis=0)
        return data - self._means
