"""Train the sample: writes model/model.joblib, model/labels.json and inputs/instances.jsonl beside this file."""

import json
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).resolve().parent


def main():
    iris = load_iris()
    model = LogisticRegression(max_iter=1000).fit(iris.data, iris.target)
    model_dir = HERE / "model"
    model_dir.mkdir(exist_ok=True)
    joblib.dump(model, model_dir / "model.joblib")
    (model_dir / "labels.json").write_text(json.dumps([str(iris.target_names[i]) for i in model.classes_]))
    rows = iris.data[::30].tolist()
    inputs = HERE / "inputs"
    inputs.mkdir(exist_ok=True)
    (inputs / "instances.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    print(f"wrote {model_dir} and {inputs / 'instances.jsonl'} ({len(rows)} instances)")


if __name__ == "__main__":
    main()
