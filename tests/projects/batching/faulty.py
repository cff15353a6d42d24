from cprsdk import PredictionError


class Faulty:
    """Doubles numbers; the instance "short" makes it return one output too few, "raise" makes it raise."""

    @classmethod
    def from_path(cls, model_dir):
        return cls()

    def predict(self, instances, **kwargs):
        if "raise" in instances:
            raise PredictionError("instance 'raise' is refused", status_code=422)
        outputs = [i * 2 if isinstance(i, int) else i for i in instances]
        return outputs[:-1] if "short" in instances else outputs
