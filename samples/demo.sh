#!/usr/bin/env bash
# The main job, end to end on this machine (no cloud account): install cprsdk, train the classic
# ZeroCenterer sample, package it with every check, predict through the packaged predictor, and
# deploy it twice to a registry folder (the second deploy reuses every file).
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
# A registry of its own, so the demo can run again (without --registry: the embedded default).
registry="$(mktemp -d)/registry"
echo "== cprsdk deploy --model iris --version v1 --registry $registry"
cprsdk deploy --model iris --version v1 --registry "$registry"
echo "== cprsdk deploy --model iris --version v2 (nothing to upload: every file is reused)"
cprsdk deploy --model iris --version v2 --registry "$registry"
echo "== cprsdk versions list --model iris"
cprsdk versions list --model iris --registry "$registry"
