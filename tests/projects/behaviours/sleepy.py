import time


class Sleepy:
    """Takes 0.1 s per predict call and returns each instance doubled: slow enough to kill a worker mid-job."""

    @classmethod
    def from_path(cls, model_dir):
        return cls()

    def predict(self, instances, **kwargs):
        time.sleep(0.1)
        return [2 * x for x in instances]
