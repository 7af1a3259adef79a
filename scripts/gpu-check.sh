#!/usr/bin/env bash
# The GPU check for a lent H200 (CUDA 13.0 image, driver 580, no Rust there): the ignored GPU tests (tests/gpu.rs:
# the shared suite on CudaKernels and cuBLAS × f32/f16/bf16), the NVRTC/ptxas checks with the machine's own CUDA,
# and the benchmark matrix (`joule run --backend cuda,cublas,cublas-tf32`, NVML energy), in under 5 minutes. Every
# output goes to one folder ($OUT there) that comes back as results/gpu/<date>/. It fails loudly: a missing GPU,
# library or binary, a failing test or a failed benchmark makes it exit non-zero with the reason; nothing is faked.
#
# 1. Here (the Rust machine), build the two binaries and stage them in .gpu-bin/ (git-ignored via .git/info/exclude):
#        scripts/gpu-check.sh build
# 2. Run it there with the device tool, carrying the binaries (one call; 3-4 minutes when everything passes):
#        run(command="bash scripts/gpu-check.sh run", carry=[".gpu-bin"], timeout_s=420)
#    (the working tree travels with the call, so cuda/ and this script are there; the binaries embed the kernel
#    sources and compile them with the machine's NVRTC.)
# 3. Here, copy what came back (the reply's files_at folder) into results/gpu/<UTC date>/ and commit it:
#        scripts/gpu-check.sh fetch /work/.device/<files_at>
#
# Knobs (environment): GPU_CHECK_SHAPES ("default,decoder-7b": ~50 Joule-kernel cases plus the GEMMs twice more for
# cublas and cublas-tf32), GPU_CHECK_TRIALS (2), GPU_CHECK_WINDOW (0.4 s; shorter than the meter's minimum is noted
# in every row by the harness), GPU_CHECK_TEST_TIMEOUT (120 s), GPU_CHECK_BENCH_TIMEOUT (160 s). Worst case, with
# every step hitting its timeout, about 6 minutes; a passing run takes 3-4.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bin="$root/.gpu-bin"

die() { echo "gpu-check: $*" >&2; exit 1; }

build() {
    set -e
    grep -qx '/.gpu-bin/' .git/info/exclude 2>/dev/null || echo '/.gpu-bin/' >>.git/info/exclude
    cargo build --release -p joule-cli
    # The test binary's path comes from cargo's JSON messages (its name carries a hash).
    local exe
    exe="$(cargo test --release --test tests --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "tests" and m.get("executable"):
        print(m["executable"])' | tail -n1)"
    [ -n "$exe" ] && [ -x "$exe" ] || die "could not find the test binary (cargo test --release --test tests --no-run)"
    rm -rf "$bin" && mkdir -p "$bin"
    cp "$root/target/release/joule" "$bin/joule"
    cp "$exe" "$bin/tests"
    # Debug info is not needed there and the carried tree is limited to 64 MiB.
    strip --strip-debug "$bin/joule" "$bin/tests" 2>/dev/null || true
    git rev-parse HEAD >"$bin/commit.txt"
    (git status --porcelain | grep -q .) && echo "dirty" >>"$bin/commit.txt"
    du -sh "$bin"/*
    echo "staged in .gpu-bin/; now: run(command=\"bash scripts/gpu-check.sh run\", carry=[\".gpu-bin\"], timeout_s=420)"
}

# Adds the first folder holding $1 (a library file name pattern) under the given roots to LD_LIBRARY_PATH.
add_lib() {
    local pattern="$1"; shift
    local hit
    hit="$(find "$@" -maxdepth 6 -name "$pattern" 2>/dev/null | head -n1)"
    if [ -n "$hit" ]; then
        export LD_LIBRARY_PATH="$(dirname "$hit")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        echo "found $pattern: $hit"
    else
        echo "NOT FOUND: $pattern under $*"
    fi
}

run() {
    local out="${OUT:?OUT is not set: run this through the device tool (see the top of this script)}"
    [ -x "$bin/tests" ] && [ -x "$bin/joule" ] || die ".gpu-bin/ is missing: run 'scripts/gpu-check.sh build' here and carry .gpu-bin"
    local t0=$SECONDS status=0 env="$out/environment.txt"
    {
        echo "date: $(date -u +%FT%TZ)"; echo "commit: $(tr '\n' ' ' <"$bin/commit.txt")"; echo "host: $(hostname)"
        nvidia-smi || echo "nvidia-smi failed"
        nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,power.draw,power.limit,temperature.gpu --format=csv || true
        command -v nvcc >/dev/null && nvcc --version | tail -n2
    } >"$env" 2>&1
    # Libraries: the driver's libcuda is on the loader path already; NVRTC and cuBLAS come from the toolkit or the
    # Python wheels in the image.
    local py_site
    py_site="$(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null || true)"
    {
        add_lib 'libnvrtc.so.1[23]*' /usr/local/cuda/lib64 /usr/local/cuda/targets $py_site
        add_lib 'libcublas.so.1[23]*' /usr/local/cuda/lib64 /usr/local/cuda/targets $py_site
        if [ -f /usr/local/cuda/include/cuda_fp16.h ]; then
            export JOULE_CUDA_INCLUDE=/usr/local/cuda/include
        else
            local inc
            inc="$(find /usr/local/cuda* $py_site -maxdepth 6 -name cuda_fp16.h 2>/dev/null | head -n1)"
            [ -n "$inc" ] && export JOULE_CUDA_INCLUDE="$(dirname "$inc")"
        fi
        echo "JOULE_CUDA_INCLUDE=${JOULE_CUDA_INCLUDE:-unset}"; echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
    } >>"$env" 2>&1
    export PATH="/usr/local/cuda/bin:$PATH" JOULE_PTX_CACHE="$(mktemp -d)" CI=1 RUST_BACKTRACE=1
    # Setup faults (no GPU, no NVRTC) surface here with the reason, before the long steps.
    grep -E 'NOT FOUND|JOULE_CUDA_INCLUDE=unset' "$env" && status=1

    echo "== GPU tests (tests/gpu.rs, --ignored)"
    timeout "${GPU_CHECK_TEST_TIMEOUT:-120}" "$bin/tests" --include-ignored --test-threads=8 gpu:: >"$out/gpu-tests.log" 2>&1
    local rc_tests=$?
    echo "== NVRTC/ptxas checks with this machine's CUDA (tests/nvrtc.rs)"
    timeout 60 "$bin/tests" nvrtc:: --nocapture >"$out/nvrtc-tests.log" 2>&1
    local rc_nvrtc=$?
    echo "== benchmark matrix (joule run --backend cuda,cublas,cublas-tf32)"
    mkdir -p "$out/bench"
    timeout "${GPU_CHECK_BENCH_TIMEOUT:-160}" "$bin/joule" run --backend cuda,cublas,cublas-tf32 \
        --shapes "${GPU_CHECK_SHAPES:-default,decoder-7b}" --trials "${GPU_CHECK_TRIALS:-2}" --window "${GPU_CHECK_WINDOW:-0.4}" \
        --warmup 0.1 --out-dir "$out/bench" >"$out/bench.log" 2>&1
    local rc_bench=$?
    # At most 8 files come back, 2 folders deep: pack the results folder into one archive.
    (cd "$out" && tar czf bench.tar.gz bench && rm -rf bench)

    {
        echo "gpu-check summary ($((SECONDS - t0)) s)"
        echo "  setup:       $([ $status -eq 0 ] && echo ok || echo 'FAILED (see environment.txt)')"
        echo "  gpu tests:   rc=$rc_tests  $(grep -E '^test result' "$out/gpu-tests.log" | tail -n1)"
        echo "  nvrtc tests: rc=$rc_nvrtc  $(grep -E '^test result' "$out/nvrtc-tests.log" | tail -n1)"
        echo "  benchmark:   rc=$rc_bench  (124 = timed out)"
        grep -E '^test .*FAILED|panicked' "$out/gpu-tests.log" | head -n 30
    } | tee "$out/summary.txt"
    tail -n 25 "$out/bench.log"
    [ $status -eq 0 ] && [ $rc_tests -eq 0 ] && [ $rc_nvrtc -eq 0 ] && [ $rc_bench -eq 0 ] || die "FAILED (see summary.txt)"
    echo "gpu-check: all passed"
}

fetch() {
    local from="${1:?usage: scripts/gpu-check.sh fetch <files_at folder from the device tool>}"
    [ -f "$from/summary.txt" ] || die "$from has no summary.txt: not a gpu-check output"
    local dest
    dest="$root/results/gpu/$(date -u +%F)"
    [ -e "$dest" ] && dest="$dest-$(date -u +%H%M)"
    mkdir -p "$dest.tmp"
    cp -r "$from"/. "$dest.tmp"/
    [ -f "$dest.tmp/bench.tar.gz" ] && tar xzf "$dest.tmp/bench.tar.gz" -C "$dest.tmp" && rm "$dest.tmp/bench.tar.gz"
    chmod -R u+w "$dest.tmp"
    mv "$dest.tmp" "$dest"
    echo "results in ${dest#"$root"/}:"; cat "$dest/summary.txt"
}

case "${1:-}" in
    build) build ;;
    run) run ;;
    fetch) shift; fetch "$@" ;;
    *) die "usage: scripts/gpu-check.sh build | run | fetch <folder>  (see the comment at the top)" ;;
esac
