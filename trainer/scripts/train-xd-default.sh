#!/usr/bin/env bash
# The shipped default models (the float encoder in .cache/models-float, quantised into models/, + models/cafe-head.onnx, issue 10's
# cross-domain protocol), as they were made. Every step resumes or is cached; on 2 shared CPU cores the
# feature cache takes ~40 min (FER+ Train at 224 px through faceres; the face-api branch ~3 min), each head
# 2-5 min. Features are cached per branch (--encoder-parts), so a new branch reuses the others' cache.
#   CAFE_SHARED=../shared bash trainer/scripts/train-xd-default.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED="${CAFE_SHARED:-$(cd .. && pwd)/shared}"
RUNS="${CAFE_RUNS:-runs}"
[ -d "$SHARED/data" ] || { echo "train-xd-default: shared data not found at $SHARED (set CAFE_SHARED)" >&2; exit 2; }
mkdir -p "$RUNS"

# 1. the encoder from the npm packages (float16 weights), and its branches alone for the feature cache
[ -f .cache/models-float/encoder-faceres-emotion-faceapi.onnx ] || (cd trainer && .venv/bin/trainer import-encoder --out ../.cache/models-float)
[ -f "$RUNS/enc/encoder-faceapi.onnx" ] || (cd trainer && .venv/bin/trainer import-encoder --out "../$RUNS/enc" --branches faceres emotion \
  && .venv/bin/trainer import-encoder --out "../$RUNS/enc" --branches faceapi)

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
  --encoder ../.cache/models-float/encoder-faceres-emotion-faceapi.onnx \
  --encoder-parts "../$RUNS/enc/encoder-faceres-emotion.onnx" "../$RUNS/enc/encoder-faceapi.onnx" \
  --train "ferplus:$SHARED/data/ferplus/FER2013Train" --train "$TW@train" --train "$BU@train" --train-weights 0.6 0.2 0.2 \
  --views 1 --domain-views 6 --variant cafe --logit-adjust 0.5 --epochs 20 --batch-size 256 --lr 5e-4 \
  --valid "ferplus:$SHARED/data/ferplus/FER2013Valid" --valid "$TW@val" --valid "$BU@val" \
  --report "$TW@test" --report "$BU@test"
.venv/bin/trainer export-head "../$RUNS/xd/shipped/best.pt" --out ../models/cafe-head.onnx --fp16
.venv/bin/trainer quantize-encoder --calibration "ferplus:$SHARED/data/ferplus/FER2013Train" --parity "ferplus:$SHARED/data/ferplus/FER2013Valid"  # the int8 copy models/ ships
cd ..

# 4. the product path on the people no batch ever held
node bin/cafe-stream.js evaluate "ferplus:$SHARED/data/ferplus/FER2013Valid" taiwanese:"$SHARED/data/taiwanese/faces_256x256" \
  "csv:$SHARED/data/buaa-nir/labels.csv" --save-crops "$RUNS/crops/shipped" -q
(cd trainer && .venv/bin/trainer score-predictions "../$RUNS/crops/shipped/"*/crops.csv --part test)
