#!/usr/bin/env bash
# The test command: set-up (idempotent), then every test on the real models and images.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$ROOT/scripts/setup.sh"
source "$ROOT/scripts/env.sh"
if [ ! -d "$FACEWATCH_TEST_DATA/faces" ]; then
  echo "test data not found at $FACEWATCH_TEST_DATA (set FACEWATCH_TEST_DATA)" >&2
  exit 1
fi
cd "$ROOT"
# The embedder's converter against the mirror's model (only when the converter changed: ~1 s).
"$ROOT/.deps/convert-venv/bin/python" "$ROOT/scripts/check_convert.py"
cargo test --release --all-targets "$@"
# The Debian package from the binary just built: systemd-analyze accepts its unit, and (as root on
# a machine without it) it installs, passes `config check` as the service user, and purges.
"$ROOT/scripts/package.sh" --check --no-build
# Arithmetic on attacker data must not overflow in a debug build either: the unit tests and both
# fuzzers once more with overflow checks on (only this crate is rebuilt for it).
cargo test --release --config 'profile.release.package.facewatch.overflow-checks=true' \
  --lib --test fuzz_decode --test fuzz_http "$@"
# Once more with the `cuda` feature: asking for CUDA without a usable GPU falls back to the CPU.
cargo test --release --features cuda --test provider
