#!/usr/bin/env bash
# The main job for now: set up, build, enroll a few sample identities into a watch list and
# identify other photos of them and of people on no list, printing the matches.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
"$ROOT/scripts/setup.sh"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
cargo build --release --quiet
FW="${CARGO_TARGET_DIR:-$ROOT/target}/release/facewatch"
FACES="$FACEWATCH_TEST_DATA/faces"
export FACEWATCH_DATA_DIR="${FACEWATCH_DATA_DIR:-$ROOT/data/demo}"
rm -rf "$FACEWATCH_DATA_DIR"

echo "== enrolling sample subjects into the 'wanted' and 'overstay' watch lists"
"$FW" enroll --list wanted --subject George_W_Bush --name "George W Bush" "$FACES/George_W_Bush/0001.jpg" "$FACES/George_W_Bush/0002.jpg"
"$FW" enroll --list wanted --subject Colin_Powell --name "Colin Powell" "$FACES/Colin_Powell/0001.jpg" "$FACES/Colin_Powell/0002.jpg"
"$FW" enroll --list overstay --subject Tony_Blair --name "Tony Blair" "$FACES/Tony_Blair/0002.jpg" "$FACES/Tony_Blair/0003.jpg"
echo "== a bad enrollment photo is refused with its reason"
"$FW" enroll --list wanted --subject Nobody "$FACEWATCH_TEST_DATA/nonface/coffee.jpg" || true
echo
"$FW" lists
echo
echo "== identifying arrivals (other photos of the enrolled people, strangers, a crowd)"
"$FW" identify "$FACES/George_W_Bush/0010.jpg" "$FACES/Colin_Powell/0005.jpg" "$FACES/Tony_Blair/0006.jpg" \
  "$FACES/Aaron_Sorkin/0001.jpg" "$FACEWATCH_TEST_DATA/multiface/selfie.jpg"
echo
echo "watch-list data is in $FACEWATCH_DATA_DIR"
