import os
import threading
import time


class Flaky:
    """A predictor whose faults are switched on by files in its model directory.

    Every from_path appends a line to ``starts``. ``slow-start`` holds seconds from_path sleeps;
    with ``fail-load`` present from_path raises; with ``crash-soon`` present the worker exits
    0.2 s after loading. predict: the instance "exit" calls os._exit(7), a number sleeps that long;
    each answer names the worker's pid.
    """

    def __init__(self, model_dir):
        self.model_dir = model_dir

    @classmethod
    def from_path(cls, model_dir):
        with open(os.path.join(model_dir, "starts"), "a") as f:
            f.write(f"{os.getpid()}\n")
        slow = os.path.join(model_dir, "slow-start")
        if os.path.exists(slow):
            with open(slow) as f:
                time.sleep(float(f.read()))
        if os.path.exists(os.path.join(model_dir, "fail-load")):
            raise RuntimeError("fail-load is set in the model directory")
        if os.path.exists(os.path.join(model_dir, "crash-soon")):
            threading.Thread(target=lambda: (time.sleep(0.2), os._exit(3)), daemon=True).start()
        return cls(model_dir)

    def predict(self, instances, **kwargs):
        for instance in instances:
            if instance == "exit":
                os._exit(7)
            if isinstance(instance, (int, float)):
                time.sleep(instance)
        return [f"pid {os.getpid()}" for _ in instances]
