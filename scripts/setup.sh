#!/usr/bin/env bash
# One idempotent set-up for a fresh Debian 12 machine: system packages, the ONNX Runtime
# shared library (from the PyPI wheel, never a CDN), and the models (from a mirror folder
# or upstream, sha256-verified). Safe to run again: each step checks before it works.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ORT_VERSION="1.31.1"
DEPS="$ROOT/.deps"
mkdir -p "$DEPS"

log() { printf '[setup] %s\n' "$*"; }

# --- 1. Debian packages: cmake + OpenBLAS build FAISS; nasm builds the bundled
#     libjpeg-turbo (SIMD), which decodes JPEG exactly as
#     OpenCV does (the reference); python3 runs the model installer; nats-server
#     (JetStream) is the broker the event tests start on a loopback port; ffmpeg decodes
#     every camera (one child process per camera); the camera tests' RTSP server is
#     gst-rtsp-server through the system python's gi (/usr/bin/python3); chromium and
#     chromium-driver run the console's end-to-end test in a real headless browser ---
PKGS=(cmake nasm libopenblas-dev pkg-config python3 unzip nats-server
  ffmpeg python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
  chromium chromium-driver)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
else
  log "Debian packages present"
fi

# --- 2. ONNX Runtime shared library from the PyPI wheel ---
ORT_DIR="$DEPS/onnxruntime"
ORT_LIB="$ORT_DIR/libonnxruntime.so.$ORT_VERSION"
if [ ! -f "$ORT_LIB" ]; then
  log "fetching onnxruntime==$ORT_VERSION wheel from PyPI"
  tmp="$(mktemp -d)"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_28_x86_64 "onnxruntime==$ORT_VERSION" -d "$tmp"
  mkdir -p "$ORT_DIR"
  (cd "$tmp" && unzip -q -o ./*.whl 'onnxruntime/capi/libonnxruntime*' )
  cp "$tmp"/onnxruntime/capi/libonnxruntime* "$ORT_DIR/"
  rm -rf "$tmp"
fi
log "ONNX Runtime: $ORT_LIB"

# --- 3. Models: mirror folder or upstream, verified against models/manifest.toml ---
python3 "$ROOT/scripts/install_models.py" --manifest "$ROOT/models/manifest.toml" \
  --dest "$ROOT/models" ${FACEWATCH_MODEL_MIRROR:+--mirror "$FACEWATCH_MODEL_MIRROR"}

log "done"
