#!/usr/bin/env bash
# Installs onnxruntime's CUDA provider for onnxruntime-node without the internet host its postinstall uses:
# the provider libraries come from PyPI's `onnxruntime-gpu` wheel of the SAME version as node_modules/onnxruntime-node,
# and the CUDA libraries it needs from the `nvidia-*` wheels that wheel names (its `cuda` and `cudnn` extras).
#
#   scripts/setup-gpu.sh                 download (~1.3 GB of wheels), unpack into .gpu/lib, link, write .gpu/env
#   scripts/setup-gpu.sh --wheels DIR    same from wheels already in DIR (no network: pip --no-index --find-links)
#   scripts/setup-gpu.sh --relink        only re-create the links (after `npm ci` wiped node_modules)
#   scripts/setup-gpu.sh --remove        remove the links and .gpu/ (back to the CPU/WebGPU-only package)
#
# Also for cafe-stream installed as a dependency: `bash node_modules/cafe-stream/scripts/setup-gpu.sh` (the links go
# into the onnxruntime-node that package uses, .gpu/ into node_modules/cafe-stream/; re-run after `npm ci`).
#
# Why `pip download --no-deps` + unzip rather than a venv: nothing here runs Python code from these wheels, only
# their .so files are wanted, and a venv would pin the wheels to the local Python's ABI (the provider wheel is
# cp3xx-tagged, its .so files are not Python-specific). So the wheels are fetched for a fixed tag and unpacked.
#
# Why links inside node_modules: onnxruntime loads `libonnxruntime_providers_{shared,cuda}.so` from the folder
# of the libonnxruntime.so.1 it runs from (node_modules/onnxruntime-node/bin/napi-v6/linux/x64), never from
# LD_LIBRARY_PATH. The CUDA libraries those providers need (libcublas, libcudnn, ...) are found through
# LD_LIBRARY_PATH, which a process reads when it starts: `.gpu/env` sets it, and bin/cafe-stream.js applies it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${CAFE_GPU_DIR:-$root/.gpu}"
python="${CAFE_GPU_PYTHON:-python3}"
wheels_dir=""
mode=install
keep_wheels=0
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) wheels_dir="$(cd "$2" && pwd)"; shift 2 ;;
    --relink) mode=relink; shift ;;
    --remove) mode=remove; shift ;;
    --keep-wheels) keep_wheels=1; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup-gpu: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "setup-gpu: $*" >&2; exit 1; }
# onnxruntime-node as Node finds it from this package: in its own node_modules (a checkout, or a nested copy), or
# in a folder above (cafe-stream installed as a dependency: npm hoists it to the project's node_modules).
find_ort() {
  local dir="$root"
  while :; do
    [ -f "$dir/node_modules/onnxruntime-node/package.json" ] && { echo "$dir/node_modules/onnxruntime-node"; return 0; }
    [ "$dir" = / ] && return 1
    dir="$(dirname "$dir")"
  done
}
ort_pkg="${CAFE_GPU_ORT_PKG:-$(find_ort || true)}"
[ -n "$ort_pkg" ] && [ -f "$ort_pkg/package.json" ] || die "onnxruntime-node not found in a node_modules at or above $root: install the package first (npm ci / npm i cafe-stream)"
version="$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$ort_pkg/package.json")"
ort_lib="$ort_pkg/bin/napi-v6/linux/x64"
[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] || die "the CUDA provider wheels exist for linux x86_64 only (this is $(uname -s)-$(uname -m))"
[ -f "$ort_lib/libonnxruntime.so.1" ] || die "no libonnxruntime.so.1 in $ort_lib"
providers=(libonnxruntime_providers_shared.so libonnxruntime_providers_cuda.so)

link() {
  for p in "${providers[@]}"; do
    [ -f "$dest/lib/$p" ] || die "$dest/lib/$p missing: run scripts/setup-gpu.sh without --relink"
    ln -sfn "$("$python" -c 'import os,sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$dest/lib/$p" "$ort_lib")" "$ort_lib/$p"
  done
}

case "$mode" in
  remove)
    for p in "${providers[@]}"; do [ -L "$ort_lib/$p" ] && rm -f "$ort_lib/$p"; done
    rm -rf "$dest"
    echo "setup-gpu: removed the CUDA provider links from $ort_pkg and $dest"
    exit 0 ;;
  relink)
    [ "$(cat "$dest/VERSION" 2>/dev/null)" = "$version" ] || die "$dest holds onnxruntime-gpu $(cat "$dest/VERSION" 2>/dev/null || echo none), onnxruntime-node is $version: run scripts/setup-gpu.sh"
    link
    echo "setup-gpu: linked the CUDA provider $version into $ort_lib"
    exit 0 ;;
esac

# manylinux tags the provider and nvidia wheels are published under; pip matches each tag exactly.
pip_args=(--disable-pip-version-check -q --only-binary=:all: --python-version 3.12 --implementation cp
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64
  --platform manylinux_2_5_x86_64)
[ -n "$wheels_dir" ] && pip_args+=(--no-index --find-links "$wheels_dir")
"$python" -m pip --version >/dev/null 2>&1 || die "$python has no pip (set CAFE_GPU_PYTHON to a Python with pip)"

download="$dest/wheels"
mkdir -p "$download"
echo "setup-gpu: onnxruntime-gpu==$version${wheels_dir:+ from $wheels_dir}" >&2
"$python" -m pip download "${pip_args[@]}" --no-deps -d "$download" "onnxruntime-gpu==$version" \
  || die "could not get onnxruntime-gpu==$version from ${wheels_dir:-PyPI}"
provider_wheel="$(ls "$download"/onnxruntime_gpu-"$version"-*.whl | head -n1)"

# The CUDA libraries: what the provider wheel itself declares for its `cuda` and `cudnn` extras, with their
# dependencies (cuDNN brings cuBLAS), so the versions follow the provider rather than this script.
mapfile -t reqs < <("$python" - "$provider_wheel" <<'PY'
import re, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    meta = next(n for n in z.namelist() if n.endswith('.dist-info/METADATA'))
    for line in z.read(meta).decode().splitlines():
        m = re.match(r'Requires-Dist:\s*([^;]+);\s*extra\s*==\s*"(cuda|cudnn)"', line)
        if m: print(m.group(1).strip().replace(' ', ''))
PY
)
[ ${#reqs[@]} -gt 0 ] || die "$provider_wheel declares no cuda/cudnn extras: cannot tell which CUDA libraries it needs"
echo "setup-gpu: ${reqs[*]}" >&2
"$python" -m pip download "${pip_args[@]}" -d "$download" "${reqs[@]}" \
  || die "could not get the CUDA library wheels (${reqs[*]}) from ${wheels_dir:-PyPI}"

# Unpack only the shared libraries: the two providers, and every nvidia/*/lib/*.so* (cu13/lib, cudnn/lib).
rm -rf "$dest/lib.new"
mkdir -p "$dest/lib.new"
"$python" - "$dest/lib.new" "$download"/*.whl <<'PY'
import os, re, shutil, sys, zipfile
out, wheels = sys.argv[1], sys.argv[2:]
wanted_provider = re.compile(r'onnxruntime/capi/libonnxruntime_providers_(shared|cuda)\.so$')
wanted_cuda = re.compile(r'nvidia/[^/]+/lib/[^/]+\.so(\.[0-9.]+)?$')
count = 0
for w in wheels:
    with zipfile.ZipFile(w) as z:
        for n in z.namelist():
            if wanted_provider.search(n) or wanted_cuda.search(n):
                target = os.path.join(out, os.path.basename(n))
                with z.open(n) as src, open(target, 'wb') as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                os.chmod(target, 0o755)
                count += 1
print(f'setup-gpu: unpacked {count} libraries', file=sys.stderr)
PY
for p in "${providers[@]}"; do [ -f "$dest/lib.new/$p" ] || die "$provider_wheel holds no $p"; done
rm -rf "$dest/lib"
mv "$dest/lib.new" "$dest/lib"
echo "$version" >"$dest/VERSION"
(cd "$download" && ls -1 ./*.whl | sed 's|^\./||') >"$dest/WHEELS"  # what pip resolved, for the record
cat >"$dest/env" <<EOF
# Written by scripts/setup-gpu.sh: the CUDA libraries of onnxruntime-gpu $version for onnxruntime-node.
# bin/cafe-stream.js applies this by itself; for \`npm run cli\`, \`npm run bench\` or your own scripts: source it.
export LD_LIBRARY_PATH="$dest/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
EOF
link
[ "$keep_wheels" = 1 ] || rm -rf "$download"
echo "setup-gpu: CUDA provider of onnxruntime-gpu $version in $dest/lib ($(du -sh "$dest/lib" | cut -f1)), linked into $ort_lib"
echo "setup-gpu: run with --device cuda (bin/cafe-stream.js sets LD_LIBRARY_PATH from $dest/env; elsewhere: source $dest/env)"
