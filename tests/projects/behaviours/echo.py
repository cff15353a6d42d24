import json
import os


class Echo:
    """Returns each instance with the greeting from model/config.json and the kwargs it got."""

    def __init__(self, greeting):
        self.greeting = greeting

    @classmethod
    def from_path(cls, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            return cls(json.load(f)["greeting"])

    def predict(self, instances, **kwargs):
        return [{"instance": i, "greeting": self.greeting, "kwargs": kwargs} for i in instances]
