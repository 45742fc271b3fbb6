"""Where the time of one /identify goes: each step timed inside one warm process.

The photo is bench.service's (640x480, one face). Steps: decode (read_rgb of the JPEG bytes),
MTCNN as the mtcnn package runs it (eager Keras) and as the door runs it (tf.functions,
happyhouse.door.detect), the facenet crop, the embedder on 1 and on 4 faces (what batching
concurrent requests could save), the search in a 12-person gallery and the JSON. Also checks
that both detectors give the same boxes. Not part of ``python -m bench`` (a diagnosis).

    python -m bench.profile_identify [--quick]
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import common


def timed(fn, n: int) -> dict:
    fn()   # warm-up
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return common.stats(times)


def main(argv=None) -> dict:
    from mtcnn import MTCNN

    from bench.service import door_photo
    from happyhouse import data
    from happyhouse.door import face_db
    from happyhouse.door import detect, recognition
    from happyhouse.face.embedders import load_embedder
    from happyhouse.image_io import read_rgb

    args = common.parser(__doc__.splitlines()[0]).parse_args(argv)
    roof = common.rooflines(args.quick)
    n = 5 if args.quick else 20
    load_start = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        photo_bytes = door_photo(data.find_folder("images"), Path(tmp) / "door.jpg").read_bytes()
    embedder = load_embedder("inception-resnet-v1")
    image = read_rgb(photo_bytes)
    eager, compiled = MTCNN(), detect.detector()
    same = eager.detect_faces(image) == compiled.detect_faces(image)
    face = detect.detect_faces(image)[0]
    crop = detect.crop_facenet(image, face)
    rng = np.random.default_rng(0)
    gallery = rng.standard_normal((12, embedder.dim)).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    search = face_db.Gallery([f"p{i}" for i in range(12)], np.arange(12), gallery)
    vector = embedder.embed([crop])
    payload = {"photo": "door.jpg", "faces": [{"face": face.to_dict(), "candidates": []}]}
    steps = [
        ("decode JPEG (read_rgb)", lambda: read_rgb(photo_bytes)),
        ("MTCNN, eager (mtcnn 1.0.0 as shipped)", lambda: eager.detect_faces(image)),
        ("MTCNN, tf.functions (the door's detector)", lambda: compiled.detect_faces(image)),
        ("facenet crop (warpAffine)", lambda: detect.crop_facenet(image, face)),
        ("embedder, 1 face", lambda: embedder.embed([crop])),
        ("embedder, 4 faces in one call", lambda: embedder.embed([crop] * 4)),
        ("gallery search, 12 people (exact)", lambda: search.search(vector, 3)),
        ("JSON of the answer", lambda: json.dumps(payload)),
        ("whole identify path (face_crops + embed)", lambda: recognition.embed_all_faces(embedder, image, "x")),
    ]
    rows = [{"step": name, **{k: v for k, v in timed(fn, n).items() if k in ("p50_ms", "p99_ms", "min_ms")}}
            for name, fn in steps]
    by = {r["step"]: r for r in rows}
    one, four = by["embedder, 1 face"]["p50_ms"], by["embedder, 4 faces in one call"]["p50_ms"]
    notes = [f"load average (1, 5, 15 min) at the start {load_start}, at the end "
             f"{[round(x, 2) for x in os.getloadavg()]}",
             f"eager and compiled MTCNN give identical boxes, landmarks and confidences: {same}",
             f"batching: 4 faces in one embedder call take {four:.0f} ms against 4 x {one:.0f} = {4 * one:.0f} ms "
             f"one by one ({4 * one - four:.0f} ms saved per 4 requests)"]
    common.write("profile_identify", rows, [], roof, args.out, notes, columns=["step", "p50_ms", "p99_ms", "min_ms"],
                 extra={"same_detections": same})
    return {"rows": rows}


if __name__ == "__main__":
    main()
