import sys

SEEN_ARGV = list(sys.argv)  # user code that reads sys.argv at import time


class ArgvReader:
    @classmethod
    def from_path(cls, model_dir):
        return cls()

    def predict(self, instances, **kwargs):
        return [SEEN_ARGV]
