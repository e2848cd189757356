# Sourced by the scripts: where the shared data and model mirror are.
# Defaults to ../shared next to the checkout (CI's layout); override with the variables.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="${FACEWATCH_SHARED:-$ROOT/../shared}"
# A checkout elsewhere on this workplace's machines still finds the shared folder.
[ -d "$SHARED" ] || [ ! -d /work/shared ] || SHARED=/work/shared
export FACEWATCH_MODEL_MIRROR="${FACEWATCH_MODEL_MIRROR:-$SHARED/models}"
export FACEWATCH_TEST_DATA="${FACEWATCH_TEST_DATA:-$SHARED/data}"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(ls "$ROOT"/.deps/onnxruntime/libonnxruntime.so.* 2>/dev/null | sort | tail -n1)}"
[ -n "$ORT_DYLIB_PATH" ] || unset ORT_DYLIB_PATH
