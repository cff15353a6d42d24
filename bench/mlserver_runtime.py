"""An MLServer custom runtime wrapping the sample predictor, for `bench_batching.py`.

MLServer runs it from its own virtualenv (the script installs MLServer 1.7 there), with this folder
on PYTHONPATH and SAMPLE_DIR set to the trained copy of samples/zerocenterer-sklearn. It serves the
same `MyPredictor` the node and the ceiling serve, so the three differ only in the server around it:
a V2 request's first input (shape [n, 4], FP64) goes to `predict` as one NumPy array, and the
labels come back as a BYTES output of shape [n, 1], which MLServer's adaptive batching splits by
its first dimension.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from mlserver import MLModel  # type: ignore[import-not-found]
from mlserver.codecs import NumpyCodec, StringCodec  # type: ignore[import-not-found]
from mlserver.types import InferenceRequest, InferenceResponse  # type: ignore[import-not-found]


class SamplePredictor(MLModel):  # type: ignore[misc]
    async def load(self) -> bool:
        sample = os.environ["SAMPLE_DIR"]
        sys.path.insert(0, sample)
        from predictor import MyPredictor  # type: ignore[import-not-found]

        self._predictor: Any = MyPredictor.from_path(os.path.join(sample, "model"))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        instances = NumpyCodec.decode_input(payload.inputs[0])
        labels = self._predictor.predict(instances)
        return InferenceResponse(model_name=self.name, outputs=[StringCodec.encode_output("predictions", labels)])
