#!/usr/bin/env bash
# Joins the checkpoint parts trainer/scripts/gpu-train.sh wrote to $OUT (best.fp16.pt.part-*) into a best.pt
# (fp32) that `trainer export-head` and `--init-from` read.
#   trainer/scripts/gpu-train-restore.sh DIR_WITH_PARTS runs/cafe-gpu224/best.pt
set -euo pipefail
src="${1:?folder holding best.fp16.pt.part-*}"
dest="${2:?where to write best.pt}"
py="$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python"
mkdir -p "$(dirname "$dest")"
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
ls "$src"/best.fp16.pt.part-* | sort -t- -k3 -n | xargs cat >"$tmp"
"$py" - "$tmp" "$dest" <<'PY'
import sys, torch
ck = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
ck["model"] = {k: v.float() if v.is_floating_point() else v for k, v in ck["model"].items()}
torch.save(ck, sys.argv[2])
print(f"{sys.argv[2]}: FER+ Valid {ck['valid_accuracy']:.4f} at epoch {ck['epoch']} (as selected on the GPU)")
PY
