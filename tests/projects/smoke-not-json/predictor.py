class Opaque:
    pass


class MyPredictor:
    """Loads fine; predict answers objects that are not JSON."""

    @classmethod
    def from_path(cls, model_dir):
        return cls()

    def predict(self, instances, **kwargs):
        return [Opaque() for _ in instances]
