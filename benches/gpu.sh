#!/usr/bin/env bash
# Model throughput on the GPU: ONNX Runtime's GPU build (the onnxruntime-gpu wheel from PyPI,
# CUDA 13), facewatch built with the `cuda` feature, then the throughput table (embedder faces/s
# at batch 1/8/32/64, detector frames/s). The provider column says what really ran: without a
# usable GPU, CUDA or cuDNN the sessions log why and fall back to the CPU.
#
# CUDA 13 and cuDNN 9 come from the system, or from the nvidia-* pip packages that PyTorch
# installs (found through python3). Usage: benches/gpu.sh [throughput args, e.g. --seconds 5]
# ORT_GPU_WHEEL=path/to/onnxruntime_gpu-*.whl uses a wheel already downloaded.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
ORT_VERSION="$(sed -n 's/^ORT_VERSION="\(.*\)"/\1/p' "$ROOT/scripts/setup.sh")"
GPU_DIR="$ROOT/.deps/onnxruntime-gpu"
LIB="$GPU_DIR/libonnxruntime.so.$ORT_VERSION"
if [ ! -f "$LIB" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  wheel="${ORT_GPU_WHEEL:-}"
  if [ -z "$wheel" ]; then
    echo "[gpu] fetching onnxruntime-gpu==$ORT_VERSION from PyPI (about 250 MB)" >&2
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
      --platform manylinux_2_28_x86_64 "onnxruntime-gpu==$ORT_VERSION" -d "$tmp"
    wheel="$(ls "$tmp"/*.whl)"
  fi
  mkdir -p "$GPU_DIR"
  unzip -q -o -j "$wheel" 'onnxruntime/capi/libonnxruntime*' -d "$GPU_DIR"
fi
# Library folders of the nvidia-* pip packages (cuBLAS, cuDNN, cuFFT, the CUDA runtime), if any.
NV_LIBS="$(python3 - <<'PY' 2>/dev/null || true
import glob, os, site, sys
roots = site.getsitepackages() + [site.getusersitepackages()] + sys.path
dirs = {os.path.dirname(p) for r in roots for p in glob.glob(os.path.join(r, "nvidia", "**", "lib*.so*"), recursive=True)}
print(":".join(sorted(dirs)))
PY
)"
export LD_LIBRARY_PATH="${NV_LIBS:+$NV_LIBS:}${LD_LIBRARY_PATH:-}"
export ORT_DYLIB_PATH="$LIB"
export FACEWATCH_LOG="${FACEWATCH_LOG:-info}"
cd "$ROOT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "[gpu] no NVIDIA GPU visible" >&2
exec cargo bench --quiet --features cuda --bench throughput -- --bench "$@"
