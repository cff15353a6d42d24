"""Hook-style image classifier: only init; the image decoder and the formatter are canned."""
import tinymodel


def init(model_dir):
    return tinymodel.ImageScorer()
