#!/usr/bin/env bash
# The main job, end to end on this machine (no cloud account): install cprsdk, train the classic
# ZeroCenterer sample, package it with every check, and predict through the packaged predictor.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/bootstrap sklearn
export PATH="$PWD/.venv/bin:$PATH"
cd samples/zerocenterer-sklearn
echo "== train"
python train.py
echo "== cprsdk package"
cprsdk package
echo "== cprsdk local predict --json-instances sample.jsonl"
cprsdk local predict --json-instances sample.jsonl
echo "== cprsdk local predict ... --kwargs '{\"probabilities\": true}'"
cprsdk local predict --json-instances sample.jsonl --kwargs '{"probabilities": true}'
