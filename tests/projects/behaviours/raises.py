class Raises:
    @classmethod
    def from_path(cls, model_dir):
        return cls()

    def predict(self, instances, **kwargs):
        raise ValueError("the model cannot handle negative ages")
