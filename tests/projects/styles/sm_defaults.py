"""SageMaker module with model_fn only: JSON/CSV/NPY decoding, model.predict and encoding by Accept."""
import tinymodel


def model_fn(model_dir):
    return tinymodel.load(model_dir)
