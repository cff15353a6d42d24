import ctypes
import os


class Crashes:
    """Dies mid-request when asked: "exit" calls os._exit, "segfault" dereferences NULL."""

    @classmethod
    def from_path(cls, model_dir):
        return cls()

    def predict(self, instances, **kwargs):
        if "exit" in instances:
            os._exit(7)
        if "segfault" in instances:
            ctypes.string_at(0)
        return [f"pid {os.getpid()}" for _ in instances]
