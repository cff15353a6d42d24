import os


class Prints:
    @classmethod
    def from_path(cls, model_dir):
        print("loading... (this must not end up in the response)")
        return cls()

    def predict(self, instances, **kwargs):
        print("predicting", instances)
        os.write(1, b"raw bytes on fd 1\n")
        return [len(instances)]
