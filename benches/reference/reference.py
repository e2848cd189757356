"""The reference pipeline facewatch is measured against: OpenCV's FaceDetectorYN on OpenCV DNN
(the zoo's fixed-640 YuNet export, not facewatch's dynamic-input file) + estimateAffinePartial2D (LMEDS) to the same 5-point template + warpAffine
(bilinear) + the same dlib ResNet ONNX on onnxruntime, all faces of an image in one batch.

usage: reference.py --models DIR --threads N NAME:LIST_FILE...   (one JSON line per set)
"""
import argparse
import json
import statistics
import time

import cv2
import numpy as np
import onnxruntime as ort

TEMPLATE = np.array([[46.6255, 44.4870], [102.9910, 45.3544], [74.5067, 77.2496],
                     [50.8013, 101.6565], [98.6521, 102.2027]], dtype=np.float32)


class Reference:
    def __init__(self, models, threads):
        cv2.setNumThreads(threads)
        self.det = cv2.FaceDetectorYN.create(f"{models}/face_detection_yunet_2023mar.onnx", "", (320, 320),
                                             0.9, 0.3, 5000)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.emb = ort.InferenceSession(f"{models}/dlib_face_recognition_resnet_model_v1.onnx", so,
                                        providers=["CPUExecutionProvider"])
        self.det_s = 0.0
        self.emb_s = 0.0

    def embed_all(self, data):
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        h, w = bgr.shape[:2]
        self.det.setInputSize((w, h))
        t = time.perf_counter()
        _, faces = self.det.detect(bgr)
        self.det_s += time.perf_counter() - t
        if faces is None:
            return 0
        chips = []
        for f in faces:
            pts = f[4:14].reshape(5, 2).astype(np.float32)
            m, _ = cv2.estimateAffinePartial2D(pts, TEMPLATE, method=cv2.LMEDS)
            chip = cv2.warpAffine(bgr, m, (150, 150), flags=cv2.INTER_LINEAR)
            chips.append(chip[:, :, ::-1])  # RGB
        x = np.ascontiguousarray(np.stack(chips).transpose(0, 3, 1, 2), dtype=np.float32)
        t = time.perf_counter()
        e = self.emb.run(None, {"input": x})[0]
        self.emb_s += time.perf_counter() - t
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        return len(chips)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("sets", nargs="+")
    a = ap.parse_args()
    r = Reference(a.models, a.threads)
    for spec in a.sets:
        name, path = spec.split(":", 1)
        images = [open(p, "rb").read() for p in open(path).read().split("\n") if p]
        # Warm-up, by the facewatch side's rule: the first three images and the first of every
        # further size (a new size grows buffers once; a camera pays that once).
        seen = set()
        for i, d in enumerate(images):
            shape = cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_COLOR).shape
            if shape not in seen or i < 3:
                r.embed_all(d)
            seen.add(shape)
        r.det_s = r.emb_s = 0.0
        times, faces = [], 0
        t_all = time.perf_counter()
        for d in images:
            t = time.perf_counter()
            faces += r.embed_all(d)
            times.append((time.perf_counter() - t) * 1e3)
        total = (time.perf_counter() - t_all) * 1e3
        n = len(images)
        print(json.dumps({"impl": "reference", "set": name, "images": n, "faces": faces,
                          "median_ms": statistics.median(times), "mean_ms": total / n,
                          "model_detect_ms": r.det_s * 1e3 / n, "model_embed_ms": r.emb_s * 1e3 / n}))


if __name__ == "__main__":
    main()
