class NotClassmethod:
    def from_path(cls, model_dir):  # forgot @classmethod
        return cls()

    def predict(self, instances, **kwargs):
        return instances
