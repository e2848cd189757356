#!/usr/bin/env python3
"""CI's check of the embedder's converter: runs it and compares its output with the mirror's.

Run by scripts/test.sh with the converter's venv (.deps/convert-venv/bin/python). It converts
dlib's .dat (from the wheel the manifest's [embedder.convert] names, cached in .deps/weights)
and requires:
  - the output's sha256 equals the manifest's (what setup.sh verifies before installing it);
  - onnxruntime embeddings of the golden chips and of seeded noise chips equal the mirror
    model's (cosine >= 0.99999), and the golden chips' equal golden.json's;
  - setup's path without the embedder in the mirror: install_models.py with a mirror that holds
    only the detector installs both models, the embedder converted; with a manifest whose
    embedder sha256 is another, it installs no embedder and fails.
It runs only when the converter, the installer, this check, their pinned packages or the
manifest changed since its last pass (a stamp in target/; a clean clone has none, so CI runs it).
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import convert_dlib  # noqa: E402
import install_models  # noqa: E402

COSINE_BAR = 0.99999
NOISE_CHIPS = 5
STAMP = os.path.join(ROOT, "target", "convert-check.stamp")
INPUTS = [
    "scripts/convert_dlib.py",
    "scripts/install_models.py",
    "scripts/check_convert.py",
    "scripts/convert-requirements.txt",
    "models/manifest.toml",
]


def stamp_key():
    h = hashlib.sha256()
    for rel in INPUTS:
        with open(os.path.join(ROOT, rel), "rb") as f:
            h.update(rel.encode() + b"\0" + hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def chips(golden_dir):
    """The golden 150x150 chips (name, RGB array) and seeded uniform noise chips."""
    from PIL import Image

    out = []
    with open(os.path.join(golden_dir, "golden.json")) as f:
        golden = json.load(f)
    for name, img in sorted(golden["images"].items()):
        if "chip150_png" in img:
            rgb = np.asarray(Image.open(os.path.join(golden_dir, img["chip150_png"])).convert("RGB"))
            out.append((name, rgb, np.array(img["dlib_embedding_of_chip150"], np.float32)))
    rng = np.random.default_rng(19)
    for i in range(NOISE_CHIPS):
        out.append((f"noise{i}", rng.integers(0, 256, (150, 150, 3), dtype=np.uint8), None))
    return out


def embed(session, rgb):
    x = rgb.astype(np.float32).transpose(2, 0, 1)[None]
    return session.run(["embedding"], {"input": x})[0][0]


def cosine(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def check_setup_path(manifest_path, manifest, mirror):
    """install_models.py as setup.sh runs it, with a mirror that lacks the embedder."""
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        only_detector = os.path.join(tmp, "mirror")
        os.makedirs(only_detector)
        shutil.copy(os.path.join(mirror, manifest["detector"]["file"]), only_detector)

        def install(manifest_file, dest):
            cmd = [sys.executable, os.path.join(HERE, "install_models.py"), "--manifest", manifest_file,
                   "--dest", dest, "--mirror", only_detector, "--cache", os.path.join(ROOT, ".deps"),
                   "--convert-python", sys.executable]
            return subprocess.run(cmd, capture_output=True, text=True)

        t0 = time.monotonic()
        run = install(manifest_path, os.path.join(tmp, "models"))
        took = time.monotonic() - t0
        for role in ("detector", "embedder"):
            path = os.path.join(tmp, "models", manifest[role]["file"])
            if not os.path.exists(path) or install_models.sha256(path) != manifest[role]["sha256"]:
                failures.append(f"setup without the embedder in the mirror did not install the {role}")
        if run.returncode != 0:
            failures.append(f"install_models.py exited {run.returncode}: " + " | ".join(run.stderr.strip().splitlines()))
        print(f"[convert-check] install_models.py with a detector-only mirror: exit {run.returncode} in {took:.1f} s")

        # The same with a manifest that wants other bytes: nothing unverified may be installed.
        with open(manifest_path) as f:
            text = f.read()
        other = os.path.join(tmp, "other.toml")
        with open(other, "w") as f:
            f.write(text.replace(manifest["embedder"]["sha256"], "0" * 64))
        run = install(other, os.path.join(tmp, "refused"))
        if run.returncode == 0 or os.path.exists(os.path.join(tmp, "refused", manifest["embedder"]["file"])):
            failures.append("a converted file with another sha256 than the manifest's was installed")
        elif "expected " + "0" * 64 not in run.stderr:
            failures.append(f"the refusal does not say why: {run.stderr.strip()}")
    return failures


def main():
    key = stamp_key()
    if os.path.exists(STAMP) and open(STAMP).read().strip() == key:
        print("[convert-check] converter unchanged since its last pass: skipped")
        return
    manifest_path = os.path.join(ROOT, "models", "manifest.toml")
    with open(manifest_path, "rb") as f:
        manifest = tomllib.load(f)
    spec = manifest["embedder"]
    mirror = os.environ.get("FACEWATCH_MODEL_MIRROR", os.path.join(ROOT, "..", "shared", "models"))
    mirror_model = os.path.join(mirror, spec["file"])
    golden_dir = os.path.join(mirror, "golden")
    for p in (mirror_model, os.path.join(golden_dir, "golden.json")):
        if not os.path.exists(p):
            sys.exit(f"[convert-check] {p} not found: the check compares with the mirror (FACEWATCH_MODEL_MIRROR)")

    dat = install_models.fetch_weights(spec["convert"], os.path.join(ROOT, ".deps"), sys.executable)
    with open(dat, "rb") as f:
        data = f.read()
    t0 = time.monotonic()
    onnx_bytes = convert_dlib.convert(data)
    took = time.monotonic() - t0
    got = hashlib.sha256(onnx_bytes).hexdigest()
    identical = got == install_models.sha256(mirror_model)
    print(f"[convert-check] converted in {took:.2f} s: sha256 {got} "
          f"({'byte-identical to' if identical else 'differs from'} the mirror's model)")

    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    ours = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
    theirs = ort.InferenceSession(mirror_model, opts, providers=["CPUExecutionProvider"])
    failures = []
    worst_diff, worst_cos, worst_golden = 0.0, 1.0, 1.0
    for name, rgb, want in chips(golden_dir):
        a, b = embed(ours, rgb), embed(theirs, rgb)
        worst_diff = max(worst_diff, float(np.abs(a - b).max()))
        worst_cos = min(worst_cos, cosine(a, b))
        if want is not None:
            worst_golden = min(worst_golden, cosine(a, want))
            if cosine(a, want) < COSINE_BAR:
                failures.append(f"{name}: cosine {cosine(a, want):.7f} against golden.json")
    print(f"[convert-check] against the mirror's model on {NOISE_CHIPS} noise and the golden chips: "
          f"max abs difference {worst_diff:.3g}, min cosine {worst_cos:.7f}; golden chips against golden.json: "
          f"min cosine {worst_golden:.7f}")
    if worst_cos < COSINE_BAR:
        failures.append(f"min cosine {worst_cos:.7f} against the mirror's model is under {COSINE_BAR}")
    if got != spec["sha256"]:
        failures.append(f"sha256 {got} is not the manifest's {spec['sha256']}: setup.sh would refuse it")
    failures += check_setup_path(manifest_path, manifest, mirror)
    if failures:
        sys.exit("[convert-check] FAILED: " + "; ".join(failures))
    os.makedirs(os.path.dirname(STAMP), exist_ok=True)
    with open(STAMP, "w") as f:
        f.write(key + "\n")
    print("[convert-check] ok")


if __name__ == "__main__":
    main()
