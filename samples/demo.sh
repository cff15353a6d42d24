#!/usr/bin/env bash
# The main job, end to end on this machine (no cloud account): install cprsdk, train the classic
# ZeroCenterer sample, package it with every check, predict through the packaged predictor, and
# deploy it twice to a registry folder (the second deploy reuses every file), serve the registry
# with a prediction node, and predict through it with `cprsdk predict` and curl.
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
port="$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
echo "== cprsdk serve --registry $registry --port $port  (in the background)"
cprsdk serve --registry "$registry" --port "$port" &
node=$!
trap 'kill -TERM "$node" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
echo "== cprsdk predict --endpoint http://127.0.0.1:$port --model iris --json-instances sample.jsonl"
cprsdk predict --endpoint "http://127.0.0.1:$port" --model iris --json-instances sample.jsonl
echo "== curl the same node (AI Platform v1 REST)"
curl -sS -H 'Content-Type: application/json' -d '{"instances": [[6.7, 3.0, 5.2, 2.3]]}' \
  "http://127.0.0.1:$port/v1/projects/demo/models/iris/versions/v2:predict"
echo
kill -TERM "$node" && wait "$node"
trap - EXIT
echo "== the node drained and exited 0"
