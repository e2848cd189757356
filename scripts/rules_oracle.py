#!/usr/bin/env python3
"""How far any per-pass rule can go on the video evaluation's clips, with perfect tracking.

Reads the analyses `cargo bench --bench video_eval -- --bench --dump DIR` wrote (every face of
every frame embedded, with the truth pass it lands on, and the list's templates) and scores
decision rules on the truth passes: an enrolled pass is found when its subject's score reaches
the threshold; a pass raises a false alert when another subject's does. For each rule it prints
the highest threshold that finds each share of the enrolled passes and the false alerts (passes
of 216) at that threshold. No cooldown, no embedding budget unless a rule says so: an upper
bound for the service's rules, which must track, embed few faces and keep cooldowns.

    .deps/convert-venv/bin/python scripts/rules_oracle.py DIR
"""
import json
import sys
from pathlib import Path

import numpy as np

TPIRS = (0.875, 0.90, 0.931, 0.95)


def load(path):
    d = json.loads(Path(path).read_text())
    subjects = sorted({t["subject"] for t in d["templates"]})
    index = {s: i for i, s in enumerate(subjects)}
    T = np.array([t["embedding"] for t in d["templates"]], dtype=np.float32)
    owner = np.array([index[t["subject"]] for t in d["templates"]])
    faces = [f for f in d["faces"] if f["embedding"] is not None]
    E = np.array([f["embedding"] for f in faces], dtype=np.float32)
    clip = dict(T=T, owner=owner, n=len(subjects), index=index, E=E)
    clip["S"] = np.stack([subject_scores(clip, e) for e in E])
    clip["pass"] = np.array([-1 if f["pass"] is None else f["pass"] for f in faces])
    clip["quality"] = np.array([f["overall"] for f in faces])
    clip["px"] = np.array([f["quality"]["face_px"] for f in faces])
    clip["frame"] = np.array([f["frame"] for f in faces])
    clip["passes"] = d["passes"]
    return clip


def subject_scores(c, e):
    """Each subject's best template score (cosine) for one embedding."""
    s = np.full(c["n"], -1.0)
    np.maximum.at(s, c["owner"], c["T"] @ e)
    return s


def fused(c, faces):
    """The quality-weighted mean of the faces' unit vectors, renormalised, against the list."""
    w = np.maximum(c["quality"][faces], 0.05)
    e = (c["E"][faces] * w[:, None]).sum(0)
    return subject_scores(c, e / np.linalg.norm(e))


RULES = {
    "frame: best face": lambda c, f: c["S"][f].max(0),
    "frame: best face, minus its second subject": lambda c, f: (
        c["S"][f] - np.sort(c["S"][f], 1)[:, -2:-1]
    ).max(0),
    "frame: best face, T-normed on the list": lambda c, f: (
        (c["S"][f] - c["S"][f].mean(1, keepdims=True)) / c["S"][f].std(1, keepdims=True)
    ).max(0),
    "pass: 2nd best face": lambda c, f: np.sort(c["S"][f], 0)[-2] if len(f) > 1 else None,
    "pass: 3rd best face": lambda c, f: np.sort(c["S"][f], 0)[-3] if len(f) > 2 else None,
    "pass: all faces fused": fused,
    "pass: 6 best faces fused": lambda c, f: fused(c, f[np.argsort(-c["quality"][f])][:6]),
    "pass: all faces fused, minus second subject": lambda c, f: (
        lambda s: s - np.sort(s)[-2]
    )(fused(c, f)),
}


def evaluate(clips, rule):
    genuine, impostor = [], []
    for c in clips:
        for p in c["passes"]:
            faces = np.where(c["pass"] == p["id"])[0]
            s = rule(c, faces) if len(faces) else None
            if s is None:
                s = np.full(c["n"], -np.inf)
            s = s.copy()
            if p["subject"]:
                j = c["index"][p["subject"]]
                genuine.append(s[j])
                s[j] = -np.inf
            impostor.append(s.max())
    genuine, impostor = np.sort(genuine)[::-1], np.array(impostor)
    out = []
    for tpir in TPIRS:
        th = genuine[int(np.ceil(tpir * len(genuine))) - 1]
        out.append((tpir, th, int((impostor >= th).sum())))
    return out, len(impostor)


def track_rule(clips, th, frame_th=0.94, agree=3, strong=0.02, max_emb=6, grow=1.25, gain=0.1,
               settle=0.05, start_px=0):
    """The service's track rule (src/decide/track.rs) on perfect tracks: which faces it embeds,
    fusion, agreement, settling. Returns (pass TPIR, false alerts, embeddings per pass)."""
    found = enrolled = false = embedded = passes = 0
    for c in clips:
        for p in c["passes"]:
            passes += 1
            enrolled += bool(p["subject"])
            faces = [i for i in np.where(c["pass"] == p["id"])[0] if c["px"][i] >= start_px]
            faces.sort(key=lambda i: c["frame"][i])
            samples, best_px, best_q, alerted, headroom = [], 0.0, 0.0, set(), None
            for i in faces:
                if alerted or len(samples) >= max_emb:
                    break
                if samples:
                    if len(samples) > agree and headroom is not None and headroom < -settle:
                        break
                    if not (c["px"][i] >= best_px * grow or c["quality"][i] >= best_q + gain):
                        continue
                best_px, best_q = max(best_px, c["px"][i]), max(best_q, c["quality"][i])
                own = c["S"][i]
                samples.append(i)
                s = fused(c, np.array(samples))
                k = int(s.argmax())
                headroom = s[k] - th
                if s[k] < th:
                    continue
                agreeing = [c["S"][j][k] for j in samples if c["S"][j].argmax() == k]
                if len(agreeing) >= agree or any(x >= frame_th + strong for x in agreeing):
                    alerted.add(k)
            embedded += len(samples)
            for k in alerted:
                if p["subject"] and c["index"][p["subject"]] == k:
                    found += 1
                else:
                    false += 1
    return found / enrolled, false, embedded / passes


TRACK_VARIANTS = {
    "today's defaults": {},
    "start at 40 px, grow 1.6x": dict(start_px=40, grow=1.6),
    "start at 48 px, at most 5": dict(start_px=48, max_emb=5),
    "start at 48 px, grow 1.6x": dict(start_px=48, grow=1.6),
    "start at 56 px, grow 1.6x": dict(start_px=56, grow=1.6),
}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    files = sorted(Path(sys.argv[1]).glob("clip-*.json"))
    if not files:
        sys.exit(f"no clip-*.json in {sys.argv[1]}: run the video_eval bench with --dump first")
    clips = [load(f) for f in files]
    print(f"clips: {', '.join(f.stem for f in files)}")
    print("| rule | " + " | ".join(f"TPIR {t}: threshold / false passes" for t in TPIRS) + " |")
    print("|---|" + "---|" * len(TPIRS))
    for name, rule in RULES.items():
        rows, n = evaluate(clips, rule)
        print(f"| {name} | " + " | ".join(f"{th:.3f} / {f} of {n}" for _, th, f in rows) + " |")
    print()
    print("The track rule on perfect tracks: pass TPIR / false alerts / embeddings per pass")
    ths = (0.935, 0.94, 0.945, 0.95)
    print("| settings | " + " | ".join(f"track_threshold {t}" for t in ths) + " |")
    print("|---|" + "---|" * len(ths))
    for name, kw in TRACK_VARIANTS.items():
        cells = [track_rule(clips, t, **kw) for t in ths]
        print(f"| {name} | " + " | ".join(f"{a:.3f} / {f} / {e:.2f}" for a, f, e in cells) + " |")


if __name__ == "__main__":
    main()
