#!/usr/bin/env bash
# Creates trainer/.venv from trainer/uv.lock (PyTorch and friends from PyPI).
set -euo pipefail
cd "$(dirname "$0")/../trainer"
command -v uv >/dev/null || python3 -m pip install --quiet "uv==0.13.9"
uv sync --frozen --extra test --quiet
