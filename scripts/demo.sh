#!/usr/bin/env bash
# The main job: set up, build, and run the checkpoint service with the embedded default (SQLite
# store, face images and audit log in a data folder; no broker needed). A demo watch list is
# enrolled and one token per role is created; two sample arrivals are posted so an alert waits
# for review, and a demo camera replays a generated arrival-hall clip (looping) so that alerts
# keep appearing without posting anything. Ctrl-C (or SIGTERM) shuts the service down cleanly.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$ROOT/scripts/setup.sh"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
cargo build --release --quiet
FW="${CARGO_TARGET_DIR:-$ROOT/target}/release/facewatch"
FACES="$FACEWATCH_TEST_DATA/faces"
export FACEWATCH_SERVICE__DATA_DIR="${FACEWATCH_SERVICE__DATA_DIR:-$ROOT/data/demo}"
export FACEWATCH_SERVICE__BIND="${FACEWATCH_SERVICE__BIND:-127.0.0.1:8080}"
export FACEWATCH_SERVICE__SITE="${FACEWATCH_SERVICE__SITE:-demo-checkpoint}"
rm -rf "$FACEWATCH_SERVICE__DATA_DIR"
mkdir -p "$FACEWATCH_SERVICE__DATA_DIR"

echo "== demo watch lists (enrolled with the command line; the API does the same over HTTP)"
"$FW" enroll --list wanted --subject George_W_Bush --name "George W Bush" "$FACES/George_W_Bush/0001.jpg" "$FACES/George_W_Bush/0002.jpg"
"$FW" enroll --list wanted --subject Colin_Powell --name "Colin Powell" "$FACES/Colin_Powell/0001.jpg" "$FACES/Colin_Powell/0002.jpg"
"$FW" enroll --list overstay --subject Tony_Blair --name "Tony Blair" "$FACES/Tony_Blair/0002.jpg" "$FACES/Tony_Blair/0003.jpg"

echo "== a demo camera: a generated arrival-hall clip (seeded; people walk toward the camera), whose"
echo "   enrolled people go on the list from photos that are not in the clip"
CLIP="$FACEWATCH_SERVICE__DATA_DIR/demo-clip"
"$FW" eval clip --seed 5 --out "$CLIP" --passes 16 --enrolled 5 --width 960 --height 540 --fps 5 \
  --data "$FACEWATCH_TEST_DATA" >/dev/null
python3 - "$CLIP/manifest.json" > "$CLIP/enroll.txt" <<'PY'
import json, os, sys
m = json.load(open(sys.argv[1]))
for e in m["enroll"]:
    print("\t".join([e["subject"]] + [os.path.join(m["faces_dir"], p) for p in e["photos"]]))
PY
while IFS=$'\t' read -r subject photos; do
  # shellcheck disable=SC2086
  "$FW" enroll --list wanted --subject "$subject" $photos >/dev/null
done < "$CLIP/enroll.txt"
VIDEO="$CLIP/$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["video"])' "$CLIP/manifest.json")"
cat > "$FACEWATCH_SERVICE__DATA_DIR/demo.toml" <<TOML
# The demo camera: the clip replayed at its own speed, again and again (see facewatch.example.toml).
[[cameras]]
id = "demo-hall"
url = "$VIDEO"
fps = 5
loop = true
TOML
"$FW" lists

echo "== one token per role (shown once; saved to $FACEWATCH_SERVICE__DATA_DIR/demo-tokens.env, mode 600)"
umask 077
{
  echo "FW_CAMERA=$("$FW" token create --role camera --name demo-camera --camera hall-a 2>/dev/null)"
  for role in officer ops admin; do
    echo "FW_${role^^}=$("$FW" token create --role "$role" --name "demo-$role" 2>/dev/null)"
  done
  echo "FW_OFFICER2=$("$FW" token create --role officer --name demo-officer-2 2>/dev/null)"
} > "$FACEWATCH_SERVICE__DATA_DIR/demo-tokens.env"
source "$FACEWATCH_SERVICE__DATA_DIR/demo-tokens.env"
cat "$FACEWATCH_SERVICE__DATA_DIR/demo-tokens.env"

"$FW" serve --config "$FACEWATCH_SERVICE__DATA_DIR/demo.toml" "$@" > >(tee "$FACEWATCH_SERVICE__DATA_DIR/serve.out") &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER' INT TERM
for _ in $(seq 1 120); do
  grep -q "listening on" "$FACEWATCH_SERVICE__DATA_DIR/serve.out" 2>/dev/null && break
  sleep 0.5
done
URL=$(grep -o 'http://[^ ]*' "$FACEWATCH_SERVICE__DATA_DIR/serve.out" | head -n1)

echo "== two arrivals at camera hall-a: Colin Powell (enrolled) and a stranger"
for img in "$FACES/Colin_Powell/0005.jpg" "$FACES/Aaron_Sorkin/0001.jpg"; do
  curl -s -H "Authorization: Bearer $FW_CAMERA" -H 'Content-Type: image/jpeg' \
    --data-binary @"$img" "$URL/v1/cameras/hall-a/frames"
  echo
done

cat <<MSG

facewatch is serving at $URL (data in $FACEWATCH_SERVICE__DATA_DIR; tokens in demo-tokens.env)
  officers:  curl -H "Authorization: Bearer \$FW_OFFICER" $URL/v1/alerts
             curl -N -H "Authorization: Bearer \$FW_OFFICER" $URL/v1/alerts/stream
             curl -H "Authorization: Bearer \$FW_OFFICER" -H 'Content-Type: application/json' \\
                  -d '{"decision":"confirm"}' $URL/v1/alerts/<id>/review   (verified after a 2nd officer)
  ops:       curl -H "Authorization: Bearer \$FW_OPS" $URL/v1/lists
             curl -H "Authorization: Bearer \$FW_OPS" $URL/v1/cameras   (demo-hall replays a clip: its
             passes raise alerts by themselves, one per enrolled person-pass)
  cameras:   curl -H "Authorization: Bearer \$FW_CAMERA" -H 'Content-Type: image/jpeg' \\
                  --data-binary @photo.jpg $URL/v1/cameras/hall-a/frames
  health:    $URL/readyz   $URL/metrics   API: $URL/v1/openapi.json
Ctrl-C stops the service.
MSG
wait $SERVER
