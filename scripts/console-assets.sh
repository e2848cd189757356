#!/usr/bin/env bash
# Rewrites assets/manifest.toml's sha256 lines from the files (run after editing an asset;
# `cargo test --lib console::assets` checks them).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - <<'PY'
import hashlib, re
p = "assets/manifest.toml"
text = open(p).read()
def fix(m):
    name = m.group(1)
    digest = hashlib.sha256(open("assets/" + name, "rb").read()).hexdigest()
    return m.group(0)[: m.start(2) - m.start(0)] + digest + m.group(0)[m.end(2) - m.start(0):]
text = re.sub(r'file = "([^"]+)"\n(?:[^\[]*?\n)?sha256 = "([0-9a-f]*)"', fix, text)
open(p, "w").write(text)
PY
