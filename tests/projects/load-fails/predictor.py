class MyPredictor:
    """Imports fine; its from_path fails, as a model that needs a missing file does."""

    @classmethod
    def from_path(cls, model_dir):
        raise ValueError(f"weights.bin is missing from {model_dir}")

    def predict(self, instances, **kwargs):
        return instances
