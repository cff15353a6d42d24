import json


class Sizes:
    """Returns the length of each instance as JSON text: a small answer to a large instance."""

    @classmethod
    def from_path(cls, model_dir):
        return cls()

    def predict(self, instances, **kwargs):
        return [len(json.dumps(i)) for i in instances]
