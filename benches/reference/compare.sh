#!/usr/bin/env bash
# facewatch against the reference pipeline (reference.py), same images, same run, same thread
# count; prints both and their ratio. The two alternate, set by set, for ROUNDS rounds, and the
# table shows means over the rounds: this shared machine drifts by 10-20 % within minutes, and
# alternating puts both sides in the same minutes. The reference's Python packages go into a
# virtualenv under .deps/ (PyPI). Usage: benches/reference/compare.sh [THREADS] [LFW_IMAGES] [ROUNDS]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/scripts/env.sh"
THREADS="${1:-2}"
N="${2:-300}"
ROUNDS="${3:-5}"
VENV="$ROOT/.deps/reference-venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" 2>/dev/null || { apt-get install -y -qq python3-venv >/dev/null && python3 -m venv "$VENV"; }
  "$VENV/bin/pip" install --quiet numpy opencv-python-headless==4.10.0.84 onnxruntime==1.31.1
  # face_recognition (dlib): prebuilt dlib wheels from dlib-bin, no compile.
  "$VENV/bin/pip" install --quiet dlib-bin==20.0.1 pillow click
  "$VENV/bin/pip" install --quiet --no-deps face_recognition==1.3.0 face-recognition-models==0.3.0
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# Single-face 250x250: the first photo of the first N identities; crowds: every multiface photo.
python3 - "$FACEWATCH_TEST_DATA" "$N" "$WORK" <<'PY'
import os, sys
data, n, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ids = sorted(d for d in os.listdir(f"{data}/faces") if os.path.isdir(f"{data}/faces/{d}"))[:n]
open(f"{work}/lfw.txt", "w").write("".join(f"{data}/faces/{d}/0001.jpg\n" for d in ids))
crowd = sorted(f for f in os.listdir(f"{data}/multiface") if f.lower().endswith(".jpg"))
open(f"{work}/crowd.txt", "w").write("".join(f"{data}/multiface/{f}\n" for f in crowd))
PY
MIRROR="${FACEWATCH_MODEL_MIRROR}"
cd "$ROOT"
cargo build --quiet --release --bench compare
for r in $(seq "$ROUNDS"); do
  for set in lfw crowd; do
    cargo bench --quiet --bench compare -- --bench --threads "$THREADS" --rounds 1 "$set:$WORK/$set.txt" >> "$WORK/fw.jsonl"
    "$VENV/bin/python" benches/reference/reference.py --models "$MIRROR" --threads "$THREADS" \
      "$set:$WORK/$set.txt" >> "$WORK/ref.jsonl"
  done
done
"$VENV/bin/python" benches/reference/face_recognition_bench.py "lfw:$WORK/lfw.txt" "crowd:$WORK/crowd.txt" > "$WORK/frl.jsonl"
python3 - "$WORK/fw.jsonl" "$WORK/ref.jsonl" "$THREADS" "$WORK/frl.jsonl" <<'PY'
import json, sys
def rounds(path):
    """Set -> the mean of every numeric field over the rounds (plus their count)."""
    by_set = {}
    for r in map(json.loads, open(path)):
        by_set.setdefault(r["set"], []).append(r)
    out = {}
    for s, rs in by_set.items():
        m = dict(rs[0])
        for k, v in rs[0].items():
            if isinstance(v, float):
                m[k] = sum(r[k] for r in rs) / len(rs)
        m["rounds"] = len(rs)
        out[s] = m
    return out, by_set
fw, fw_rounds = rounds(sys.argv[1])
ref, ref_rounds = rounds(sys.argv[2])
frl = {r["set"]: r for r in map(json.loads, open(sys.argv[4]))}
print(f"per image, decode -> embeddings of every face; {sys.argv[3]} threads; one process each, same images;")
print(f"means of {fw[next(iter(fw))]['rounds']} rounds, facewatch and reference alternating\n")
print("| set | images | faces fw/ref | facewatch mean (median) | reference mean (median) | ratio fw/ref | fw model floor | fw overhead, one image at a time (excl. decode) | fw streamed per image | fw streamed vs floor (throughput) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for s in fw:
    f, r = fw[s], ref[s]
    floor = f["model_detect_ms"] + f["model_embed_ms"]
    pct = lambda ms: 100.0 * (ms - floor) / floor  # overhead over the bare model calls
    print(f"| {s} | {f['images']} | {f['faces']}/{r['faces']} | {f['mean_ms']:.2f} ms ({f['median_ms']:.2f}) "
          f"| {r['mean_ms']:.2f} ms ({r['median_ms']:.2f}) | {f['mean_ms']/r['mean_ms']:.2f} "
          f"| {floor:.2f} ms (detect {f['model_detect_ms']:.2f} + embed {f['model_embed_ms']:.2f}) "
          f"| {pct(f['mean_ms']):.1f} % ({pct(f['mean_ms'] - f['decode_ms']):.1f} %; decode {f['decode_ms']:.2f} ms) "
          f"| {f['stream_ms']:.2f} ms | {pct(f['stream_ms']):.1f} % |")
    per_round = [a["mean_ms"] / b["mean_ms"] for a, b in zip(fw_rounds[s], ref_rounds[s])]
    print(f"  ratio per round ({s}): " + ", ".join(f"{x:.2f}" for x in per_round))
    print(f"  facewatch stages per image ({s}): decode {f['decode_ms']:.2f}, detect {f['detect_wall_ms']:.2f} "
          f"(model {f['model_detect_ms']:.2f}), align+quality {f['prepare_ms']:.2f}, embed {f['embed_wall_ms']:.2f} "
          f"(model {f['model_embed_ms']:.2f}) ms")
print("\nagainst the face_recognition library (dlib HOG detector + the same ResNet weights):\n")
print("| set | faces fw/face_recognition | facewatch mean | face_recognition mean (median) | speed-up |")
print("|---|---|---|---|---|")
for s in fw:
    f, r = fw[s], frl[s]
    print(f"| {s} | {f['faces']}/{r['faces']} | {f['mean_ms']:.2f} ms | {r['mean_ms']:.1f} ms ({r['median_ms']:.1f}) | {r['mean_ms']/f['mean_ms']:.1f}x |")
PY
