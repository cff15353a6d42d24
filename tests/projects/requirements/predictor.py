"""A bare-folder predictor that needs a distribution from PyPI, declared in requirements.txt."""

import os

import inflection


class Inflector:
    def __init__(self, suffix):
        self._suffix = suffix

    @classmethod
    def from_path(cls, model_dir):
        with open(os.path.join(model_dir, "suffix.txt")) as f:
            return cls(f.read().strip())

    def predict(self, instances, **kwargs):
        return [inflection.camelize(text) + self._suffix for text in instances]
