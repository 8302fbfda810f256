#!/usr/bin/env bash
# The shipped default models (models/encoder-faceres-emotion.onnx + models/cafe-head.onnx, issue 10's
# cross-domain protocol), as they were made. Every step resumes or is cached; on 2 shared CPU cores the
# feature cache takes ~40 min (FER+ Train at 224 px), each head 2-5 min.
#   CAFE_SHARED=../shared bash trainer/scripts/train-xd-default.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED="${CAFE_SHARED:-$(cd .. && pwd)/shared}"
RUNS="${CAFE_RUNS:-runs}"
[ -d "$SHARED/data" ] || { echo "train-xd-default: shared data not found at $SHARED (set CAFE_SHARED)" >&2; exit 2; }
mkdir -p "$RUNS"

# 1. the encoder pair from the npm package, float16 weights
[ -f models/encoder-faceres-emotion.onnx ] || (cd trainer && .venv/bin/trainer import-encoder --out ../models)

# 2. product-path detections of the two photo sets (the crops are rendered from these boxes)
npm run --silent build
for set in "taiwanese=taiwanese:$SHARED/data/taiwanese/faces_256x256" "buaa=csv:$SHARED/data/buaa-nir/labels.csv"; do
  name=${set%%=*}
  [ -f "$RUNS/crops/$name/crops.csv" ] || node bin/cafe-stream.js evaluate "$set" --save-crops "$RUNS/crops/$name" -q > /dev/null
done

# 3. the head: FER+ + the training people of both sets, selected on the mean over three validation domains
TW="detections:$PWD/$RUNS/crops/taiwanese/crops.csv"; BU="detections:$PWD/$RUNS/crops/buaa/crops.csv"
cd trainer
[ -f "../$RUNS/xd/shipped/best.pt" ] || .venv/bin/trainer train-xd --out "../$RUNS/xd/shipped" --cache-dir "../$RUNS/cache" \
  --encoder ../models/encoder-faceres-emotion.onnx \
  --train "ferplus:$SHARED/data/ferplus/FER2013Train" --train "$TW@train" --train "$BU@train" --train-weights 0.6 0.2 0.2 \
  --views 1 --domain-views 6 --variant cafe --logit-adjust 0.5 --epochs 20 --batch-size 256 --lr 5e-4 \
  --valid "ferplus:$SHARED/data/ferplus/FER2013Valid" --valid "$TW@val" --valid "$BU@val" \
  --report "$TW@test" --report "$BU@test"
.venv/bin/trainer export-head "../$RUNS/xd/shipped/best.pt" --out ../models/cafe-head.onnx --fp16
cd ..

# 4. the product path on the people no batch ever held
node bin/cafe-stream.js evaluate "ferplus:$SHARED/data/ferplus/FER2013Valid" taiwanese:"$SHARED/data/taiwanese/faces_256x256" \
  "csv:$SHARED/data/buaa-nir/labels.csv" --save-crops "$RUNS/crops/shipped" -q
(cd trainer && .venv/bin/trainer score-predictions "../$RUNS/crops/shipped/"*/crops.csv --part test)
