"""Train the sample: writes model/model.joblib, model/preprocessor.pkl and sample.jsonl beside this file."""

import json
import pickle
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from preprocess import ZeroCenterer

HERE = Path(__file__).resolve().parent


def main():
    features, labels = load_iris(return_X_y=True)
    preprocessor = ZeroCenterer()
    model = LogisticRegression(max_iter=1000).fit(preprocessor.preprocess(features), labels)
    model_dir = HERE / "model"
    model_dir.mkdir(exist_ok=True)
    joblib.dump(model, model_dir / "model.joblib")
    with open(model_dir / "preprocessor.pkl", "wb") as f:
        pickle.dump(preprocessor, f)
    rows = features[::30].tolist()  # one line per instance, for --json-instances
    (HERE / "sample.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {model_dir} and sample.jsonl ({len(rows)} instances)")


if __name__ == "__main__":
    main()
