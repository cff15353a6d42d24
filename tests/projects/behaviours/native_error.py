class XGBoostError(Exception):
    """Named as xgboost's error is: a native library's multi-line message, with a C++ stack trace."""


class NativeError:
    @classmethod
    def from_path(cls, model_dir):
        return cls()

    def predict(self, instances, **kwargs):
        raise XGBoostError(
            "[10:42:17] /workspace/src/learner.cc:1511: Check failed: booster /opt/models/booster.json is empty\n"
            "Stack trace:\n"
            "  [bt] (0) /usr/lib/python3/site-packages/xgboost/lib/libxgboost.so(+0x22dbbc) [0x7f2a]\n"
            "  [bt] (1) /usr/lib/python3/site-packages/xgboost/lib/libxgboost.so(XGBoosterPredict+0x1a) [0x7f2b]\n"
        )
