"""Is bfloat16 as good as float32 on this CPU? The issue's checks, in one run:

* style transfer (ImageNet VGG-16, 300x400, louvre_small + monet, the course's Adam lr 2.0 from
  the notebook's noisy start, seed 1): the fp32 and the bf16 run's pictures after 20 steps
  (SSIM >= 0.95, ``tf.image.ssim`` on the 8-bit pictures) and their total costs after 200 steps,
  both measured in fp32 (within 5%);
* embeddings (inception-resnet-v1 at the door's batch of 64, every face of $FACES_DATA/people and
  groups and of the course's images, degraded as bench/door_accuracy.py does): the calibrated
  decisions made with fp32 and with bf16 embeddings: every pair "same person?" at the crop path's
  threshold, and the door's answer (issue 22's rule) for each face against the others.

    python -m bench.precision_quality [--quick]   # bench/results/precision_quality.json
"""
from __future__ import annotations

import time

import numpy as np

from bench import common


def adam_run(cost, start, steps, precision, keep_at=20):
    """(picture after ``keep_at`` steps, picture after ``steps``, seconds) of the course's Adam."""
    import keras
    import tensorflow as tf
    from happyhouse.style.optimize import make_train_step
    variable = tf.Variable(start)
    step = make_train_step(cost, variable, keras.optimizers.Adam(2.0, epsilon=1e-8), precision)
    early, t0 = None, time.perf_counter()
    for i in range(steps):
        step()
        if i + 1 == keep_at:
            early = variable.numpy()
    return early, variable.numpy(), time.perf_counter() - t0


def style_check(quick: bool) -> tuple[list[dict], list[dict]]:
    """Rows and goals of the style-transfer check."""
    import tensorflow as tf
    from bench.style_step import images, ssim
    from happyhouse.style.cost import StyleTransferCost
    from happyhouse.style.networks import load_loss_network
    from happyhouse.style.start import NOISE_RATIO, noisy_image
    size, steps, early = ((96, 128), 20, 5) if quick else ((300, 400), 200, 20)
    content, style, _ = images(size, np.random.default_rng(0))
    cost = StyleTransferCost(load_loss_network("vgg16", size, verbose=False), content, style)
    start = noisy_image(content, NOISE_RATIO, seed=1)
    runs = {p: adam_run(cost, start, steps, p, early) for p in ("float32", "bfloat16")}
    J = {p: float(cost(tf.constant(r[1]))[0]) for p, r in runs.items()}
    s_early, s_end = ssim(runs["float32"][0], runs["bfloat16"][0]), ssim(runs["float32"][1], runs["bfloat16"][1])
    rel = abs(J["bfloat16"] - J["float32"]) / J["float32"]
    rows = [{"check": f"style, {p}", "steps": steps, "seconds": r[2], "J_fp32_measured": J[p]} for p, r in runs.items()]
    goals = [common.goal(f"style: pictures after {early} steps", "SSIM >= 0.95", round(s_early, 4), s_early >= 0.95),
             common.goal(f"style: total cost after {steps} steps (measured in fp32)", "within 5%",
                         round(rel, 4), rel <= 0.05, f"J fp32 {J['float32']:.4g}, J bf16 {J['bfloat16']:.4g}; "
                         f"SSIM after {steps} steps {s_end:.3f} (drifts apart in detail, as the issue says)")]
    return rows, goals


def door_answers(items, embedder) -> list:
    """The door's answer (issue 22's rule) for each face against every face of another photo."""
    from bench.door_accuracy import name_of
    return [name_of(p, [g for g in items if g.source != p.source], embedder, after=True) for p in items]


def pair_decisions(items, embedder) -> np.ndarray:
    """"same person?" for every pair of faces of different photos, at the first face's crop threshold."""
    E = np.array([i.vector for i in items])
    d = np.linalg.norm(E[:, None] - E[None], axis=2)
    limits = np.array([embedder.threshold_for(i.face.crop) for i in items])[:, None]
    other = np.array([[a.source != b.source for b in items] for a in items])
    return (d < limits)[other], d[other], limits.repeat(len(items), 1)[other]


def embedding_check() -> tuple[list[dict], list[dict]]:
    """Rows and goals of the embeddings check."""
    from bench.door_accuracy import load_items
    from happyhouse.face.embedders import load_embedder
    items = {p: load_items(load_embedder("inception-resnet-v1", precision=p)) for p in ("float32", "bfloat16")}
    emb = load_embedder("inception-resnet-v1")
    rows, goals = [], []
    for name in items["float32"]:
        a, b = items["float32"][name], items["bfloat16"][name]
        (da, dist, lim), (db, _, _) = pair_decisions(a, emb), pair_decisions(b, emb)
        moved = float(np.max([np.linalg.norm(x.vector - y.vector) for x, y in zip(a, b)]))
        flips = int(np.sum(da != db))
        changed = [f"{x.person} ({x.source.rsplit('/', 1)[-1]}, {x.variant}): {p} -> {q}"
                   for x, p, q in zip(a, door_answers(a, emb), door_answers(b, emb)) if p != q]
        answers = len(changed)
        margin = float(np.min(np.abs(dist - lim)))
        rows.append({"check": f"embeddings, {name}", "faces": len(a), "pairs": int(da.size), "pair_flips": flips,
                     "door_answer_flips": answers, "max_embedding_move": moved, "closest_pair_to_threshold": margin})
        goals.append(common.goal(f"embeddings ({name}): calibrated decisions unchanged", "0 flips",
                                 {"pairs": flips, "door answers": answers}, flips == 0 and answers == 0,
                                 f"{len(a)} faces, {da.size} pairs; embeddings moved <= {moved:.3g}; "
                                 f"answers changed: {'; '.join(changed) or 'none'}"))
    return rows, goals


def main(argv=None) -> dict:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--skip-embeddings", action="store_true", help="the style check only (also with --quick)")
    p.add_argument("--skip-style", action="store_true", help="the embeddings check only")
    args = p.parse_args(argv)
    from happyhouse.precision import bfloat16_missing
    missing = bfloat16_missing()
    if missing is not None:
        p.error(f"it compares bfloat16 with float32, but {missing}")
    roof = common.rooflines(args.quick)
    rows, goals = style_check(args.quick) if not args.skip_style else ([], [])
    if not (args.skip_embeddings or args.quick):
        more = embedding_check()
        rows, goals = rows + more[0], goals + more[1]
    from happyhouse.precision import onednn_enabled
    notes = [f"TensorFlow's oneDNN {'on' if onednn_enabled() else 'off'} in this run"]
    common.write("precision_quality", rows, goals, roof, args.out, notes,
                 columns=["check", "steps", "seconds", "J_fp32_measured", "faces", "pairs", "pair_flips",
                          "door_answer_flips", "max_embedding_move", "closest_pair_to_threshold"])
    return {"rows": rows, "goals": goals}


if __name__ == "__main__":
    main()
