"""The `face_recognition` library (dlib HOG detector + the same dlib ResNet weights) on the same
images: the baseline facewatch must beat by 10x. Decode with PIL, detect (HOG, upsample 1),
5-point landmarks, 128-d encodings of every face.

usage: face_recognition_bench.py NAME:LIST_FILE...   (one JSON line per set)
"""
import json
import statistics
import sys
import time

import face_recognition


def main():
    for spec in sys.argv[1:]:
        name, path = spec.split(":", 1)
        paths = [p for p in open(path).read().split("\n") if p]
        images = [open(p, "rb").read() for p in paths]
        import io
        for d in images[:3]:
            img = face_recognition.load_image_file(io.BytesIO(d))
            face_recognition.face_encodings(img, face_recognition.face_locations(img))
        times, faces = [], 0
        t_all = time.perf_counter()
        for d in images:
            t = time.perf_counter()
            img = face_recognition.load_image_file(io.BytesIO(d))
            faces += len(face_recognition.face_encodings(img, face_recognition.face_locations(img)))
            times.append((time.perf_counter() - t) * 1e3)
        total = (time.perf_counter() - t_all) * 1e3
        print(json.dumps({"impl": "face_recognition", "set": name, "images": len(images), "faces": faces,
                          "median_ms": statistics.median(times), "mean_ms": total / len(images)}))


if __name__ == "__main__":
    main()
