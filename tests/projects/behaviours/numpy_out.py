import numpy as np


class NumpyOut:
    @classmethod
    def from_path(cls, model_dir):
        return cls()

    def predict(self, instances, **kwargs):
        arr = np.asarray(instances, dtype=np.float32)
        return {"sum": arr.sum(axis=1), "count": np.int64(len(instances)), "flag": np.bool_(True),
                "nan": float("nan")}
