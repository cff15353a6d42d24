import itertools
import json
import os


class Recorder:
    """Each output names its instance, the call's kwargs and a call id; every call is recorded, one line per call."""

    def __init__(self, log_dir):
        self.log = os.path.join(log_dir, f"calls-{os.getpid()}.jsonl")
        self.calls = itertools.count(1)

    @classmethod
    def from_path(cls, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            return cls(json.load(f)["log_dir"])

    def predict(self, instances, **kwargs):
        call = f"{os.getpid()}-{next(self.calls)}"
        with open(self.log, "a") as log:
            log.write(json.dumps({"call": call, "kwargs": kwargs, "instances": instances}) + "\n")
        return [{"instance": i, "kwargs": kwargs, "call": call} for i in instances]
