#!/usr/bin/env bash
# CAFE with the paper's schedule on a lent GPU (issue 12, part 3): the image mask network (ResNet-18) on 224 px
# input, batch 32, Adam 2e-4, ExponentialLR 0.9, 60 epochs or as many as fit the time budget, on FER+ carried
# as one compressed array (trainer/scripts/prepare-gpu-train.sh makes .gpu/train/ferplus.xz). Prints FER+ Valid.
#
#   bash trainer/scripts/gpu-train.sh      # on the lent machine, from the repo root; carry .gpu/train
#
# env: CAFE_TRAIN_MINUTES  whole-run budget: unpacking, feature cache, training, results (default 8.5)
#      CAFE_TRAIN_DEVICE   cuda (default) | cpu: the same steps on the CPU (the smoke run)
#      CAFE_TRAIN_EXTRA    more `trainer train` flags (smoke: "--max-steps 2 --epochs 1")
#      CAFE_TRAIN_PYTHON   a Python with torch, onnxruntime, pillow, numpy, tqdm (default python3)
# Writes to $OUT (or $CAFE_TRAIN_DIR/out): train.txt (everything printed), log.jsonl (per epoch), and the selected
# checkpoint as fp16 in parts of 15 MiB (best.fp16.pt.part-*) that trainer/scripts/gpu-train-restore.sh turns
# back into a best.pt for `trainer export-head`.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
pack="${CAFE_TRAIN_PACK:-$root/.gpu/train/ferplus.xz}"
work="${CAFE_TRAIN_DIR:-/tmp/cafe-gpu-train}"
out="${OUT:-$work/out}"
py="${CAFE_TRAIN_PYTHON:-python3}"
device="${CAFE_TRAIN_DEVICE:-cuda}"
budget_s="$(awk -v m="${CAFE_TRAIN_MINUTES:-8.5}" 'BEGIN {print int(m * 60)}')"
threads="$(nproc)"
export PYTHONPATH="$root/trainer${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$out"
exec > >(tee "$out/train.txt") 2>&1
t0=$SECONDS
say() { echo "== $* (t=$((SECONDS - t0)) s)"; }
[ -f "$pack" ] || { echo "gpu-train: no $pack: run trainer/scripts/prepare-gpu-train.sh first"; exit 2; }
rm -rf "$work/data" "$work/cache" "$work/run"

say "unpack $(basename "$pack") ($(du -h "$pack" | cut -f1))"
"$py" "$root/trainer/scripts/ferplus_pack.py" unpack "$pack" "$work/data" || exit 1
train=(ferplus:"$work/data/FER2013Train")
valid=(ferplus:"$work/data/FER2013Valid")

say "feature cache: the encoder in models/ (onnxruntime, $threads threads) over Valid and Train (+ mirrored)"
"$py" -m cafe_train.main cache-features --cache-dir "$work/cache" --plain-only --threads "$threads" --batch-size 64 \
  "${valid[@]}" || exit 1
"$py" -m cafe_train.main cache-features --cache-dir "$work/cache" --threads "$threads" --batch-size 64 "${train[@]}" || exit 1

# what is left, less ~70 s for the last selection on Valid, the checkpoint and the results
minutes="$(awk -v b="$budget_s" -v used="$((SECONDS - t0))" 'BEGIN {m = (b - used - 70) / 60; if (m < 0.5) m = 0.5; printf "%.2f", m}')"
say "train on $device: 224 px mask input, up to 60 epochs, $minutes min"
# shellcheck disable=SC2086
"$py" "$root/trainer/scripts/gpu_train.py" --device "$device" --train "${train[@]}" --valid "${valid[@]}" \
  --cache-dir "$work/cache" --out "$work/run" --variant cafe --mask-source image --image-size 224 --epochs 60 \
  --time-budget-min "$minutes" --threads "$threads" --no-progress ${CAFE_TRAIN_EXTRA:-}
rc=$?

say "results"
cp "$work/run/log.jsonl" "$out/" 2>/dev/null
"$py" - "$work/run" "$out" <<'PY'
import json, sys
from pathlib import Path
import torch
run, out = Path(sys.argv[1]), Path(sys.argv[2])
rows = [json.loads(l) for l in open(run / "log.jsonl")] if (run / "log.jsonl").exists() else []
done = [r for r in rows if not r.get("partial")]
if not (run / "best.pt").exists():
    sys.exit("no best.pt: training did not reach a selection point")
ck = torch.load(run / "best.pt", map_location="cpu", weights_only=False)
rate = ", ".join(f"{r['img_per_s']:.0f}" for r in done[:3])
print(f"FER+ Valid (majority protocol), selected checkpoint: {ck['valid_accuracy']:.4f} at epoch {ck['epoch']}; "
      f"{len(done)} full epochs in {rows[-1]['elapsed_s'] / 60:.1f} min; train img/s (first epochs) {rate}")
ck["model"] = {k: v.half() if v.is_floating_point() else v for k, v in ck["model"].items()}
path = out / "best.fp16.pt"
torch.save(ck, path)
data, part = path.read_bytes(), 15 * 2**20
for i in range(0, len(data), part):
    (out / f"best.fp16.pt.part-{i // part}").write_bytes(data[i:i + part])
path.unlink()
print(f"checkpoint: {len(data) / 2**20:.1f} MiB fp16 in {(len(data) + part - 1) // part} parts")
PY
say "done (train exit $rc)"
exit "$rc"
