"""A custom transformer the pickled pipeline needs: shipped as a package (--package-uris)."""
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


class Clip(BaseEstimator, TransformerMixin):
    def __init__(self, low: float = 0.0, high: float = 6.0) -> None:
        self.low = low
        self.high = high

    def fit(self, X, y=None):  # noqa: N803 - scikit-learn's names
        return self

    def transform(self, X):  # noqa: N803
        return np.clip(np.asarray(X, dtype=float), self.low, self.high)
