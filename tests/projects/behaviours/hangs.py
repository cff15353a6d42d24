import time


class Hangs:
    """Sleeps for as many seconds as the instance says."""

    @classmethod
    def from_path(cls, model_dir):
        return cls()

    def predict(self, instances, **kwargs):
        time.sleep(float(instances[0]))
        return ["woke"]
