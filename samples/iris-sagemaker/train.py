"""Train the sample: writes model/model.joblib, inputs/rows.csv and inputs/instances.jsonl beside this file."""

import json
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from inference import FEATURES

HERE = Path(__file__).resolve().parent


def main():
    iris = load_iris()
    species = iris.target_names[iris.target]  # the model predicts species names directly
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(iris.data, species)
    model_dir = HERE / "model"
    model_dir.mkdir(exist_ok=True)
    joblib.dump(model, model_dir / "model.joblib")
    rows = iris.data[::30].tolist()
    inputs = HERE / "inputs"
    inputs.mkdir(exist_ok=True)
    lines = [",".join(FEATURES)] + [",".join(str(v) for v in row) for row in rows]  # with a header line
    (inputs / "rows.csv").write_text("\n".join(lines) + "\n")
    (inputs / "instances.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    print(f"wrote {model_dir} and {inputs} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
