#!/usr/bin/env python3
"""Install the models named in models/manifest.toml into models/, verifying sha256.

Source order per model: an existing file with the right hash (nothing to do), the mirror
folder (--mirror, e.g. ../shared/models in CI), then the upstream URL. A file whose hash does
not match is never installed.
"""
import argparse, hashlib, os, shutil, sys, tempfile, tomllib, urllib.request


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--dest", required=True)
    ap.add_argument("--mirror")
    a = ap.parse_args()
    with open(a.manifest, "rb") as f:
        manifest = tomllib.load(f)
    failed = []
    for role, m in manifest.items():
        target = os.path.join(a.dest, m["file"])
        if os.path.exists(target) and sha256(target) == m["sha256"]:
            print(f"[models] {role}: {m['file']} ok")
            continue
        tmp = tempfile.NamedTemporaryFile(dir=a.dest, delete=False, suffix=".part").name
        got = False
        if a.mirror and os.path.exists(os.path.join(a.mirror, m["file"])):
            shutil.copyfile(os.path.join(a.mirror, m["file"]), tmp)
            got = sha256(tmp) == m["sha256"]
            if not got:
                print(f"[models] {role}: mirror copy has the wrong sha256", file=sys.stderr)
        if not got and m.get("url"):
            try:
                urllib.request.urlretrieve(m["url"], tmp)
                got = sha256(tmp) == m["sha256"]
                if not got:
                    print(f"[models] {role}: upstream file has the wrong sha256", file=sys.stderr)
            except Exception as e:  # network errors: report and go on to the next model
                print(f"[models] {role}: download failed: {e}", file=sys.stderr)
        if got:
            os.replace(tmp, target)
            print(f"[models] {role}: installed {m['file']}")
        else:
            os.path.exists(tmp) and os.remove(tmp)
            failed.append(role)
    if failed:
        print(f"[models] could not install: {', '.join(failed)} "
              "(set FACEWATCH_MODEL_MIRROR to a folder holding them; see models/README.md)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
