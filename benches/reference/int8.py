"""int8 variant of the embedder, as measured for issue 5 (see BENCHMARKS.md): static QDQ
quantisation (onnxruntime.quantization), per-channel int8 weights, uint8 activations, MinMax
calibration on 300 aligned chips of LFW identities that the accuracy tests' first identities do
not use, with the first convolution and the final MatMul kept in float. Prints the cosine of
each test chip's int8 embedding to its float one and the batch-1/8 speed ratio.

usage: int8.py OUT.onnx     (needs the reference venv plus `onnx`; models from $FACEWATCH_MODEL_MIRROR)

To run the accuracy tests on the result, put it in models/ under the embedder's file name and
its sha256 in models/manifest.toml, run `cargo test --release --test accuracy`, then restore.
"""
import glob
import os
import sys
import time

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

from reference import TEMPLATE

MODELS = os.environ["FACEWATCH_MODEL_MIRROR"]
DATA = os.environ["FACEWATCH_TEST_DATA"]
SRC = f"{MODELS}/dlib_face_recognition_resnet_model_v1.onnx"


def chips(identities, per_identity):
    det = cv2.FaceDetectorYN.create(f"{MODELS}/face_detection_yunet_2023mar.onnx", "", (320, 320), 0.9, 0.3, 5000)
    out = []
    for d in identities:
        for f in sorted(glob.glob(f"{DATA}/faces/{d}/*.jpg"))[:per_identity]:
            bgr = cv2.imread(f)
            det.setInputSize((bgr.shape[1], bgr.shape[0]))
            _, faces = det.detect(bgr)
            if faces is None:
                continue
            m, _ = cv2.estimateAffinePartial2D(faces[0][4:14].reshape(5, 2).astype(np.float32), TEMPLATE,
                                               method=cv2.LMEDS)
            chip = cv2.warpAffine(bgr, m, (150, 150), flags=cv2.INTER_LINEAR)[:, :, ::-1]
            out.append(np.ascontiguousarray(chip.transpose(2, 0, 1), dtype=np.float32))
    return np.stack(out)


class Calibration(CalibrationDataReader):
    def __init__(self, x):
        self.it = iter([{"input": x[i:i + 1]} for i in range(len(x))])

    def get_next(self):
        return next(self.it, None)


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def main():
    out = sys.argv[1]
    ids = sorted(os.listdir(f"{DATA}/faces"))
    calib, test = chips(ids[-300:], 1), chips(ids[:200], 2)
    quant_pre_process(SRC, out + ".pre.onnx", skip_symbolic_shape=True)
    m = onnx.load(out + ".pre.onnx")
    for i, n in enumerate(m.graph.node):
        n.name = f"{n.op_type}_{i}"
    onnx.save(m, out + ".pre.onnx")
    keep_float = [next(n.name for n in m.graph.node if n.op_type == "Conv"),
                  [n.name for n in m.graph.node if n.op_type == "MatMul"][-1]]
    quantize_static(out + ".pre.onnx", out, Calibration(calib), quant_format=QuantFormat.QDQ, per_channel=True,
                    nodes_to_exclude=keep_float, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    os.remove(out + ".pre.onnx")
    f32, i8 = session(SRC), session(out)
    a, b = f32.run(None, {"input": test})[0], i8.run(None, {"input": test})[0]
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    cos = (a * b).sum(1)
    print(f"{len(test)} test chips: cosine int8 vs float min {cos.min():.4f}, 1st percentile "
          f"{np.percentile(cos, 1):.4f}, mean {cos.mean():.4f}")
    for bs in (1, 8):
        x = test[:bs]
        t = {}
        for name, s in (("float", f32), ("int8", i8)):
            s.run(None, {"input": x})
            t0 = time.perf_counter()
            for _ in range(20):
                s.run(None, {"input": x})
            t[name] = (time.perf_counter() - t0) / 20 * 1e3
        print(f"batch {bs}: float {t['float']:.2f} ms, int8 {t['int8']:.2f} ms, ratio {t['int8'] / t['float']:.2f}")


if __name__ == "__main__":
    main()
