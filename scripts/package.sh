#!/usr/bin/env bash
# Builds the Debian package (cargo-deb) from the release build (--no-build: the one there), and with --check also proves it:
# systemd-analyze accepts the unit, the package installs, its binary runs `config check` as the
# service user (again after root rotates the key file, then the data key), and it purges cleanly.
# The check installs system-wide, so it runs only as root on a machine where no other facewatch
# package is installed (CI's fresh machine).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
check=false build=true
for a in "$@"; do
  case "$a" in
    --check) check=true ;;
    --no-build) build=false ;;  # scripts/test.sh: `cargo test` has just built target/release/facewatch
    *) echo "usage: $0 [--check] [--no-build]" >&2; exit 2 ;;
  esac
done

command -v cargo-deb >/dev/null || { echo "cargo-deb not found: run scripts/setup.sh" >&2; exit 1; }
[ -f "${ORT_DYLIB_PATH:-}" ] || { echo "ONNX Runtime library not found: run scripts/setup.sh" >&2; exit 1; }
mkdir -p target/package
cp "$ORT_DYLIB_PATH" target/package/libonnxruntime.so
if $build; then cargo build --release --bin facewatch; fi
deb=$(cargo deb --no-build --fast --output target/package/ | tail -n1)
echo "[package] $deb"
$check || exit 0

# The unit as packaged, checked by systemd itself (the binary it names must exist: extract it).
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
unit="$root/lib/systemd/system/facewatch.service"
[ -f "$unit" ] || unit="$root/usr/lib/systemd/system/facewatch.service"
sed "s#/usr/bin/facewatch#$root/usr/bin/facewatch#" "$unit" > "$root/facewatch.service"
systemd-analyze verify "$root/facewatch.service"
echo "[package] systemd-analyze verify: ok"
echo "[package] hardening: $(systemd-analyze security --offline=true "$root/facewatch.service" 2>/dev/null | tail -n1 || echo 'n/a')"

if [ "$(id -u)" != 0 ]; then echo "[package] not root: install check skipped" >&2; exit 0; fi
if dpkg -s facewatch >/dev/null 2>&1; then echo "[package] facewatch already installed: install check skipped" >&2; exit 0; fi
export DEBIAN_FRONTEND=noninteractive
dpkg -i "$deb"
trap 'dpkg --purge facewatch >/dev/null 2>&1 || true; rm -rf "$root"' EXIT
getent passwd facewatch >/dev/null
test "$(stat -c '%U:%G %a' /etc/facewatch/facewatch.toml)" = "root:facewatch 640"
test "$(stat -c '%U %a' /var/lib/facewatch)" = "facewatch 700"
/usr/bin/facewatch --version
# Models from the mirror through the packaged installer, then the service user's own check.
/usr/sbin/facewatch-install-models ${FACEWATCH_MODEL_MIRROR:+--mirror "$FACEWATCH_MODEL_MIRROR"}
test "$(stat -c '%U:%G %a' /etc/facewatch/data.key)" = "facewatch:facewatch 600"
check_as_service() {
  runuser -u facewatch -- env ORT_DYLIB_PATH=/usr/lib/facewatch/libonnxruntime.so \
    /usr/bin/facewatch --config /etc/facewatch/facewatch.toml config check
}
check_as_service
# An admin rotates the key as root; the service user still opens the data folder after.
/usr/bin/facewatch --config /etc/facewatch/facewatch.toml key rotate
test "$(stat -c '%U %a' /etc/facewatch/data.key)" = "facewatch 600"
check_as_service
# With the service stopped, an admin replaces the data key itself as root: the store the service
# user made is re-keyed, every file stays the service user's, and the service user reads it after.
runuser -u facewatch -- /usr/bin/facewatch --config /etc/facewatch/facewatch.toml token create --role admin --name package-check >/dev/null
/usr/bin/facewatch --config /etc/facewatch/facewatch.toml key rotate --data-key
test "$(stat -c '%U %a' /etc/facewatch/data.key)" = "facewatch 600"
test -z "$(find /var/lib/facewatch/data ! -user facewatch)"
runuser -u facewatch -- /usr/bin/facewatch --config /etc/facewatch/facewatch.toml token list | grep package-check >/dev/null
check_as_service
dpkg --purge facewatch
test ! -e /usr/bin/facewatch
echo "[package] installs, checks and purges: ok"
