#!/usr/bin/env bash
# Makes what trainer/scripts/gpu-train.sh needs on a lent GPU machine, .gpu/train/ferplus.xz (FER+ Train + Valid,
# the images the majority protocol keeps, as one compressed uint8 array), checks that the working tree plus it
# fit the 64 MiB a device run carries, and runs gpu-train.sh's steps here on a tiny pack on the CPU (smoke).
#   CAFE_DATA=/path/to/ferplus trainer/scripts/prepare-gpu-train.sh [--smoke-only]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
data="${CAFE_DATA:-${CAFE_SHARED:-$root/../shared}/data/ferplus}"
py="$root/trainer/.venv/bin/python"
dest="$root/.gpu/train"
smoke="$root/runs/gpu-train-smoke"
mkdir -p "$dest"
if [ "${1:-}" != "--smoke-only" ]; then
  [ -f "$dest/ferplus.xz" ] && echo "prepare-gpu-train: reusing $dest/ferplus.xz (delete it to repack)" \
    || (cd trainer && "$py" scripts/ferplus_pack.py pack "$data" "$dest/ferplus.xz")
  tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
  carry=$(du -sb "$dest" | cut -f1)
  awk -v t="$tree" -v c="$carry" 'BEGIN {printf "prepare-gpu-train: working tree %.1f MiB + .gpu/train %.1f MiB = %.1f MiB of 64 MiB\n", t/2^20, c/2^20, (t+c)/2^20; exit (t + c > 64 * 2^20) ? 3 : 0}' \
    || { echo "prepare-gpu-train: OVER the 64 MiB a device run carries: shrink models/ (or the tree) first" >&2; exit 3; }
fi
echo "prepare-gpu-train: smoke run of gpu-train.sh on the CPU (40 + 40 images, 2 steps)" >&2
rm -rf "$smoke"
(cd trainer && "$py" scripts/ferplus_pack.py pack "$data" "$smoke/ferplus-tiny.xz" --limit 40)
CAFE_TRAIN_PACK="$smoke/ferplus-tiny.xz" CAFE_TRAIN_DIR="$smoke" CAFE_TRAIN_DEVICE=cpu CAFE_TRAIN_PYTHON="$py" \
  CAFE_TRAIN_EXTRA="--max-steps 2 --epochs 1" CAFE_TRAIN_MINUTES=5 OUT="$smoke/out" bash trainer/scripts/gpu-train.sh
grep -q '^FER+ Valid' "$smoke/out/train.txt" || { echo "prepare-gpu-train: the smoke run printed no FER+ Valid line" >&2; exit 1; }
"$root/trainer/scripts/gpu-train-restore.sh" "$smoke/out" "$smoke/restored/best.pt"
echo "prepare-gpu-train: ready: on the lent machine run: bash trainer/scripts/gpu-train.sh  (carry .gpu/train)"
