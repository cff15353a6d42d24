from cprsdk import PredictionError


class ChoosesStatus:
    @classmethod
    def from_path(cls, model_dir):
        return cls()

    def predict(self, instances, **kwargs):
        raise PredictionError("feature 'age' must be positive", status_code=422)
