#!/usr/bin/env bash
# Installs what the GPU-less CUDA checks need — NVRTC, the CUDA headers, ptxas and cuobjdump — from NVIDIA's PyPI
# wheels into .cuda-tools/ (ignored by git), and prints the environment to use them:
#   eval "$(scripts/install-cuda-tools.sh)"
# No driver and no GPU are installed or needed. Idempotent: a second run only prints the environment.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${JOULE_CUDA_TOOLS:-$root/.cuda-tools}"
# Exact versions, so every CI run compiles with the same NVRTC and ptxas. CUDA 13.0 matches the driver of the GPU
# machine we test on (580 / CUDA 13.0); cuobjdump (and the nvdisasm it runs) have no 13.0 wheel; their oldest 13.x reads 13.0 cubins.
specs=(nvidia-cuda-nvrtc==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-crt==13.0.88 nvidia-cuda-nvcc==13.0.88
    nvidia-cuda-cuobjdump==13.2.51 nvidia-cuda-nvdisasm==13.2.51)
stamp="$dest/.installed-$(echo "${specs[*]}" | cksum | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
    # pip --target does not merge into an existing tree: install afresh beside it, then swap it in.
    rm -rf "$dest.new"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps \
        --target "$dest.new" "${specs[@]}" >&2
    touch "$dest.new/$(basename "$stamp")"
    rm -rf "$dest" && mv "$dest.new" "$dest"
fi
cu="$dest/nvidia/cu13"
[ -d "$cu" ] || cu="$(dirname "$(find "$dest/nvidia" -maxdepth 3 -name include -type d | head -n1)")"
bin="$(dirname "$(find "$dest" -name ptxas -type f | head -n1)")"
lib="$(dirname "$(find "$dest" -name 'libnvrtc.so*' | head -n1)")"
chmod +x "$bin"/* 2>/dev/null || true
# Only the tools the checks use go on PATH. nvcc stays off it: the wheels lack the CCCL headers nvcc needs, and with
# nvcc on PATH build.rs would try (and fail) to precompile PTX on every build.
mkdir -p "$dest/bin"
for tool in ptxas cuobjdump nvdisasm; do ln -sf "$bin/$tool" "$dest/bin/$tool"; done
echo "export JOULE_CUDA_INCLUDE='$cu/include'"
echo "export PATH='$dest/bin':\"\$PATH\""
echo "export LD_LIBRARY_PATH='$lib':\"\${LD_LIBRARY_PATH:-}\""
