#!/usr/bin/env bash
# Builds what scripts/device/gpu-check.sh needs on a lent GPU machine (no Node.js, no registry, at most 64 MiB
# carried INCLUDING the tracked files) into .gpu/device/ (git-ignored), checks the size, and runs the check's
# CPU half here from the packed bundle, so a bundle that lacks a file fails here and not on the GPU's clock.
#
#   bash scripts/device/prepare-gpu-check.sh [--no-check]
#
# .gpu/device/bundle.tar.xz  this machine's Node binary (stripped) + app/: dist/src, dist/bench, bin/, package.json
#                            and only the node_modules files the CLI and the model-stage bench open, found by
#                            running both under strace (model stage on cpu+webgpu, `analyze` on a clip)
# .gpu/device/debs/          the Vulkan loader and GL dispatch libraries (Debian's libvulkan1, libglvnd0, ...)
# .gpu/device/clip.mp4       the shared clip the end-to-end figure is measured on (default d3.mp4)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
dest="$root/.gpu/device"
stage="$root/.gpu/device-stage"
shared="${CAFE_SHARED:-$root/../shared}"
clip="${CAFE_CHECK_CLIP:-$shared/data/videos/d3.mp4}"
limit=$((64 * 1024 * 1024))
check=1
[ "${1:-}" = "--no-check" ] && check=0
die() { echo "prepare-gpu-check: $*" >&2; exit 1; }
command -v strace >/dev/null || die "needs strace (apt-get install strace) to find the files the CLI opens"
[ -f "$clip" ] || die "no clip at $clip (set CAFE_SHARED or CAFE_CHECK_CLIP)"

rm -rf "$stage" "$dest"
mkdir -p "$stage/app/bin" "$dest/debs"

echo "prepare-gpu-check: compiling into $stage" >&2
# Into the stage, not dist/: others' builds in this working tree are left alone.
npx tsc -p tsconfig.json --outDir "$stage/build" \
  || echo "prepare-gpu-check: WARNING: tsc reported type errors (above); packing what it emitted" >&2
for f in src/cli/main.js bench/gpu-model-stage.js; do [ -f "$stage/build/$f" ] || die "tsc emitted no $f"; done
mkdir -p "$stage/app/dist"
cp -r "$stage/build/src" "$stage/build/bench" "$stage/app/dist/"
rm -rf "$stage/build"
cp bin/cafe-stream.js "$stage/app/bin/"
cp package.json "$stage/app/"
ln -s "$root/node_modules" "$stage/app/node_modules"

echo "prepare-gpu-check: tracing the files the model stage and analyze open" >&2
trace="$stage/trace"
strace -f -qq -e trace=openat,open -o "$trace.1" node "$stage/app/dist/bench/gpu-model-stage.js" --models models \
  --providers cpu,webgpu --batches 1 --seconds 0.05 --parity-crops 2 >/dev/null 2>&1 \
  || die "the model-stage bench failed here (run it: node $stage/app/dist/bench/gpu-model-stage.js --providers cpu)"
strace -f -qq -e trace=openat,open -o "$trace.2" env -u LD_LIBRARY_PATH node "$stage/app/bin/cafe-stream.js" analyze "$clip" \
  --device cpu --models models --sample-fps 2 --quiet --out /dev/null \
  || die "analyze failed here"
python3 - "$root/node_modules" "$stage/app/node_modules" "$trace".1 "$trace".2 <<'PY'
import os, re, shutil, sys
src, dst, traces = os.path.realpath(sys.argv[1]), sys.argv[2], sys.argv[3:]
opened = set()
for t in traces:
    for line in open(t):
        # any open of an existing file: a call strace splits ("<unfinished ...>") shows its result on a later line.
        # Resolved while the stage's node_modules link still exists: the ESM loader opens package.json files
        # through it, the CommonJS loader through the real path.
        m = re.search(r'open(?:at)?\(.*?"([^"]+)"', line)
        if m:
            opened.add(os.path.realpath(m.group(1)))
os.unlink(dst)  # the link to the real node_modules; the copies go into a real folder
files = sorted(p for p in opened if p.startswith(src + os.sep) and os.path.isfile(p))
# providers linked in by scripts/setup-gpu.sh are not part of the bundle
files = [p for p in files if '/libonnxruntime_providers_' not in p]
for p in files:
    target = os.path.join(dst, os.path.relpath(p, src))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copy2(p, target)
print(f"prepare-gpu-check: {len(files)} node_modules files, {sum(os.path.getsize(p) for p in files) / 2**20:.1f} MiB",
      file=sys.stderr)
PY
strip -o "$stage/node" "$(command -v node)"
echo "node $(node --version), built from $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src bench || echo '+local changes') on $(date -u +%F)" >"$stage/app/BUNDLE"

echo "prepare-gpu-check: compressing (xz -9; a few minutes on 2 cores)" >&2
tar -C "$stage" -cf - node app | xz -9 -T2 >"$dest/bundle.tar.xz"
cp "$clip" "$dest/clip.mp4"
# the Vulkan loader and the GL vendor-neutral dispatch libraries the NVIDIA ICD (libGLX_nvidia) links against,
# as the device README lists them
(cd "$dest/debs" && apt-get download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null 2>&1) \
  || die "apt-get download of the Vulkan/GL loader packages failed (apt-get update first?)"

# What travels: tracked files + untracked files git does not ignore + the carried folder.
tree_bytes=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
carry_bytes=$(du -sb "$dest" | cut -f1)
total=$((tree_bytes + carry_bytes))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "prepare-gpu-check: working tree $(mib "$tree_bytes") (models/ $(mib "$(du -sb models | cut -f1)")) + .gpu/device $(mib "$carry_bytes") (bundle $(mib "$(stat -c %s "$dest/bundle.tar.xz")")) = $(mib "$total") of 64 MiB"
if [ "$total" -gt "$limit" ]; then
  echo "prepare-gpu-check: OVER the 64 MiB a device run carries: shrink models/ (or the tree) first" >&2
  status=3
else
  status=0
fi

if [ "$check" = 1 ]; then
  echo "prepare-gpu-check: the check's CPU half from the packed bundle (webgpu fails without a GPU)" >&2
  CAFE_CHECK_DIR="$root/runs/gpu-check-local" CAFE_CHECK_SAMPLE_FPS="${CAFE_CHECK_SAMPLE_FPS:-5}" CAFE_CHECK_BATCHES="${CAFE_CHECK_BATCHES:-1,16,64}" \
    CAFE_CHECK_SECONDS=0.5 bash "$root/scripts/device/gpu-check.sh" --here
  grep -q '^cpu | ' "$root/runs/gpu-check-local/out/gpu-check.txt" || { echo "prepare-gpu-check: the model stage did not run from the bundle" >&2; exit 1; }
  grep -q -- '--device cpu: exit 0' "$root/runs/gpu-check-local/out/gpu-check.txt" || { echo "prepare-gpu-check: analyze did not run from the bundle" >&2; exit 1; }
fi
rm -rf "$stage"
if [ "$status" = 0 ]; then
  echo "prepare-gpu-check: ready: run on the lent machine: bash scripts/device/gpu-check.sh  (carry .gpu/device)"
else
  echo "prepare-gpu-check: the bundle works, but the run would carry more than 64 MiB (see above)" >&2
fi
exit $status
