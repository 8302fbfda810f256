#!/usr/bin/env bash
# The GPU check for a lent machine (issue 12), one command from the repo root, ~3-5 min on an H200:
#
#   bash scripts/device/gpu-check.sh            # on the lent machine; carry .gpu/device (made by prepare-gpu-check.sh)
#   bash scripts/device/gpu-check.sh --here     # the same steps on this machine (CPU half; no system changes)
#
# It unpacks the carried bundle (a Node binary and the built CLI with the node_modules files it uses), makes
# Vulkan available for onnxruntime's WebGPU provider (the Vulkan loader .deb when the machine has none; the
# NVIDIA ICD from the driver mount), and prints:
#   1. the model stage (models/, read through their manifests) per provider: crops/s at batch 1/16/64/256 on
#      cpu, webgpu and, where its libraries can be found, cuda; max |Δp| of each GPU provider against cpu;
#   2. end-to-end fps of `cafe-stream analyze` on the carried clip with --device webgpu, then --device cpu.
# Everything printed also goes to $OUT (or $CAFE_CHECK_DIR/out): gpu-check.txt, model-stage.json.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
here=0
[ "${1:-}" = "--here" ] && here=1
carry="${CAFE_DEVICE_DIR:-$root/.gpu/device}"
work="${CAFE_CHECK_DIR:-/tmp/cafe-gpu-check}"
out="${OUT:-$work/out}"
models="${CAFE_CHECK_MODELS:-$root/models}"
sample_fps="${CAFE_CHECK_SAMPLE_FPS:-}"  # empty: every frame
mkdir -p "$out"
log="$out/gpu-check.txt"
: >"$log"
say() { echo "$*" | tee -a "$log"; }
step() { say ""; say "== $* ($(date -u +%T))"; }
t_start=$SECONDS

step "bundle"
[ -f "$carry/bundle.tar.xz" ] || { say "gpu-check: no $carry/bundle.tar.xz: run scripts/device/prepare-gpu-check.sh first"; exit 2; }
rm -rf "$work/app" "$work/node"
mkdir -p "$work"
if command -v xz >/dev/null; then
  xz -dc "$carry/bundle.tar.xz" | tar -x -C "$work"
else
  python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2])' "$carry/bundle.tar.xz" "$work"
fi || { say "gpu-check: could not unpack $carry/bundle.tar.xz"; exit 2; }
node="$work/node"
app="$work/app"
say "node $("$node" --version), bundle $(du -sh "$work/app" | cut -f1) unpacked, $(cat "$app/BUNDLE" 2>/dev/null)"
ort_lib="$app/node_modules/onnxruntime-node/bin/napi-v6/linux/x64"

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$log" || say "no nvidia-smi"
say "cores $(nproc), $(uname -sm)"

step "Vulkan (WebGPU)"
if [ "$here" = 1 ] || [ "$(id -u)" != 0 ]; then
  ldconfig -p | grep -q 'libvulkan\.so\.1 ' || say "no libvulkan.so.1, and this mode installs nothing"
else
  # the device README's recipe, in every run: the machine starts bare
  for f in "$carry"/debs/*.deb; do dpkg -x "$f" /; done
  ldconfig
  say "unpacked $(ls "$carry"/debs | tr '\n' ' ')"
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -f "$icd" ] && ! ls /usr/share/vulkan/icd.d/nvidia* /etc/vulkan/icd.d/nvidia* >/dev/null 2>&1; then
  export VK_DRIVER_FILES="$icd"
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  say "VK_DRIVER_FILES=$icd"
fi
ldconfig -p | grep 'libvulkan\.so\.1 ' | head -n1 | tee -a "$log"

step "CUDA provider"
providers=cpu,webgpu
cuda_libs="$(python3 -c 'import glob, os, site; print(":".join(sorted({os.path.dirname(p) for d in site.getsitepackages() for p in glob.glob(d + "/nvidia/*/lib/lib*.so*")})))' 2>/dev/null || true)"
if [ -f "$carry/cuda/libonnxruntime_providers_cuda.so.xz" ]; then
  for p in cuda shared; do xz -dc "$carry/cuda/libonnxruntime_providers_$p.so.xz" >"$ort_lib/libonnxruntime_providers_$p.so"; done
fi
if [ -f "$ort_lib/libonnxruntime_providers_cuda.so" ]; then
  providers=cpu,webgpu,cuda
  export LD_LIBRARY_PATH="$cuda_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  say "cuda: provider present; CUDA libraries from PyTorch's wheels: ${cuda_libs:-none found}"
else
  say "cuda: skipped (libonnxruntime_providers_cuda.so, 272 MB, is not in the carry; CUDA libraries here: ${cuda_libs:-none})"
fi

step "model stage ($models)"
timeout 300 "$node" "$app/dist/bench/gpu-model-stage.js" --models "$models" --providers "$providers" \
  --batches "${CAFE_CHECK_BATCHES:-1,16,64,256}" --seconds "${CAFE_CHECK_SECONDS:-1.5}" --json 2>"$out/model-stage.stderr" \
  | tee "$out/model-stage.out" | grep -v '^MODEL_STAGE_JSON' | tee -a "$log"
grep '^MODEL_STAGE_JSON ' "$out/model-stage.out" | sed 's/^MODEL_STAGE_JSON //' >"$out/model-stage.json"
[ -s "$out/model-stage.json" ] || { say "model stage failed:"; tail -n 20 "$out/model-stage.stderr" | tee -a "$log"; }

step "end to end: analyze $(basename "$carry/clip.mp4")"
if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  if python3 -c 'import cv2' 2>/dev/null; then
    mkdir -p "$work/shim"
    cp "$root/scripts/device/cv2-ffmpeg.py" "$work/shim/ffmpeg"
    cp "$root/scripts/device/cv2-ffmpeg.py" "$work/shim/ffprobe"
    chmod +x "$work/shim/ffmpeg" "$work/shim/ffprobe"
    export FFMPEG_PATH="$work/shim/ffmpeg" FFPROBE_PATH="$work/shim/ffprobe"
    say "no ffmpeg here: decoding with OpenCV $(python3 -c 'import cv2; print(cv2.__version__)') (scripts/device/cv2-ffmpeg.py)"
  else
    say "no ffmpeg and no OpenCV: end-to-end skipped"
  fi
fi
for device in webgpu cpu; do
  t0=$(date +%s.%N)
  timeout 240 "$node" "$app/bin/cafe-stream.js" analyze "$carry/clip.mp4" --device "$device" --models "$models" \
    ${sample_fps:+--sample-fps "$sample_fps"} --out "$out/events-$device.jsonl" 2>"$out/analyze-$device.stderr"
  rc=$?
  t1=$(date +%s.%N)
  summary="$(grep -E '^[0-9]+ frames in ' "$out/analyze-$device.stderr" | tail -n1)"
  model_line="$(grep -o 'expression model .* on [a-z]*[^;]*' "$out/analyze-$device.stderr" | head -n1)"
  wall="$(python3 -c "print(f'{$t1 - $t0:.1f}')")"
  say "--device $device: exit $rc; ${summary:-no summary}; wall ${wall} s with start-up and model loading; ${model_line:-}"
  [ "$rc" = 0 ] || tail -n 3 "$out/analyze-$device.stderr" | tee -a "$log"
done
step "done in $((SECONDS - t_start)) s"
