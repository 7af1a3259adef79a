#!/usr/bin/env bash
# Prints the per-kernel resource table of every kernel joule_launch::kernels() lists — registers, static shared
# memory, stack frame, spills (ptxas -v) and HMMA/HGMMA/LDSM/LDGSTS/LDL counts (cuobjdump --dump-sass) — for sm_80
# and sm_90a, compiled by NVRTC exactly as the CUDA backend compiles them. No GPU needed. Fails like the test it
# runs (tests/nvrtc.rs): on a compile error, spills in a hot kernel, or a tensor-core kernel without HMMA.
#   scripts/cuda-resources.sh            # installs the CUDA wheels into .cuda-tools/ when needed
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v ptxas >/dev/null || [ -z "${JOULE_CUDA_INCLUDE:-}" ]; then
    eval "$(scripts/install-cuda-tools.sh)"
fi
# CI=1: a missing tool fails instead of printing "skipped".
CI="${CI:-1}" cargo test --quiet --test tests -- --exact nvrtc::hot_kernels_never_spill_and_tensor_core_kernels_use_hmma \
    --nocapture
