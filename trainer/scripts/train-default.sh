#!/usr/bin/env bash
# The shipped default head (models/cafe-head.onnx), as it was run on a shared 2-core CPU machine:
#   1. cache faceres features for FERPlus Valid (plain) and Train (plain + mirrored);
#   2. train CAFE with the mask taken from the encoder feature only (--mask-source features: a Linear(D, D)
#      over the standardised feature), 30 epochs with the reference optimiser; cheap, no image network;
#   3. add the paper's image mask network (ResNet-18 on the 48-px crop) to it (--mask-source both), warm-started
#      from step 2 with the new branch at zero (--init-from), selecting on Valid every 200 steps and each epoch,
#      within a 55-minute budget (CAFE_BUDGET_MIN).
# Every step is resumable: rerun the script (the cache resumes per 2048-image part, training continues
# last.pt). Departures from the reference (feature-conditioned mask, standardised features, warm start, the
# time budget, 48-px mask input) and their reasons are in models/MODEL_CARD.md.
# usage: CAFE_DATA=/path/to/ferplus trainer/scripts/train-default.sh
set -euo pipefail
cd "$(dirname "$0")/.."
data="${CAFE_DATA:?set CAFE_DATA to the folder holding FER2013Train and FER2013Valid}"
runs="${CAFE_RUNS:-../runs}"
budget="${CAFE_BUDGET_MIN:-55}"
py=.venv/bin/python
export OMP_WAIT_POLICY=PASSIVE  # no busy-waiting threads on shared cores
train=(--train "ferplus:$data/FER2013Train" --valid "ferplus:$data/FER2013Valid" --cache-dir "$runs/cache"
       --image-size 48 --variant cafe)
resume() { [[ -f "$1/last.pt" ]] && echo --resume || true; }

$py -m cafe_train.main cache-features --cache-dir "$runs/cache" --plain-only "ferplus:$data/FER2013Valid"
$py -m cafe_train.main cache-features --cache-dir "$runs/cache" "ferplus:$data/FER2013Train"
$py -m cafe_train.main train "${train[@]}" --mask-source features --epochs 30 \
  --out "$runs/cafe-fmask" $(resume "$runs/cafe-fmask")
$py -m cafe_train.main train "${train[@]}" --mask-source both --epochs 60 --time-budget-min "$budget" \
  --eval-every 200 --init-from "$runs/cafe-fmask/best.pt" --out "$runs/cafe-both" $(resume "$runs/cafe-both")
$py -m cafe_train.main export-head "$runs/cafe-both/best.pt" --out ../models/cafe-head.onnx \
  --valid "ferplus:$data/FER2013Valid"
