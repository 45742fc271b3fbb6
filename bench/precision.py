"""oneDNN off/on x float32/bfloat16 on this CPU: the VGG-16 style step and the embedder at batch 1
and 64, each oneDNN setting in its own process (TensorFlow reads ``TF_ENABLE_ONEDNN_OPTS`` once,
at its import), against the matmul rooflines measured in the same process.

* step: ImageNet VGG-16 (the offline loss network) at 300x400 on louvre_small + monet, one
  compiled Adam step (``make_train_step``), median of 5 after 2 warm-ups;
* embedder: inception-resnet-v1 (the door's), ``embed()`` on course faces, median of 5
  (3 at batch 64) after 2 warm-ups;
* roofline: ``tf.linalg.matmul`` GFLOP/s (bench.common.rooflines) in the same process; the
  step's FLOPs (2 x forward of the pruned network + Gram matrices) over its time.

The JSON records the CPU flags, the fp32 step (oneDNN as TensorFlow leaves it), the fastest
setting, and what ``precision="auto"`` (happyhouse.precision.resolve_precision) picks here.

    python -m bench.precision [--quick]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from bench import common

#: One process each: oneDNN off and on, and both held to AVX2 or to AVX-512 without VNNI/BF16 (oneDNN's
#: ONEDNN_MAX_CPU_ISA, which also bounds the oneDNN sgemm that TensorFlow's Eigen contractions call
#: with oneDNN off): the nearest this machine comes to an AVX2-only CPU and to an AVX-512 one where
#: TensorFlow leaves oneDNN off (clock, caches and the AVX-compiled rest of TensorFlow are this CPU's).
ISAS = {"": {}, ", AVX2 only": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
        ", AVX-512 without VNNI/BF16": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}}
SETTINGS = {f"{state}{isa}": {"TF_ENABLE_ONEDNN_OPTS": flag, **extra}
            for isa, extra in ISAS.items() for state, flag in (("off", "0"), ("on", "1"))}


def step_rows(quick: bool, roof: dict) -> list[dict]:
    """The VGG-16 step in each precision: rows with seconds, GFLOP/s and roofline shares."""
    from bench.style_step import forward_flops, gram_flops, images
    from happyhouse.style.cost import StyleTransferCost
    from happyhouse.style.networks import load_loss_network
    from happyhouse.style.optimize import make_train_step
    from happyhouse.style.start import NOISE_RATIO, noisy_image
    import keras
    import tensorflow as tf

    size = (96, 128) if quick else (300, 400)
    content, style, _ = images(size, np.random.default_rng(0))
    model = load_loss_network("vgg16", size, verbose=False)
    cost = StyleTransferCost(model, content, style)
    layers = [cost.content_layer] + [n for n, _ in cost.style_layers]
    flops = 2 * forward_flops(model, layers, size) + 3 * gram_flops(model, layers, size)
    rows = []
    for precision in common.precisions_here():
        variable = tf.Variable(noisy_image(content, NOISE_RATIO, seed=0))
        step = make_train_step(cost, variable, keras.optimizers.Adam(2.0, epsilon=1e-8), precision)
        t = float(np.median(common.timeit(lambda: float(step()[0]), repeats=2 if quick else 5, warmup=2)))
        rows.append({"what": f"vgg16 step {size[0]}x{size[1]}", "precision": precision, "batch": 1,
                     "seconds": t, "GFLOP_s": flops / t / 1e9,
                     "share_fp32_roof": flops / t / 1e9 / roof["fp32_gflops"],
                     "share_bf16_roof": common.share(flops / t / 1e9, roof["bf16_gflops"])})
    return rows


def embedder_rows(quick: bool) -> list[dict]:
    """inception-resnet-v1's ``embed()`` (preprocessing included) at batch 1 and 64 in each precision."""
    from bench.embedding import faces_for
    from happyhouse.face.embedders import load_embedder
    emb = load_embedder("inception-resnet-v1")
    faces, _ = faces_for(emb.input_size, 64, np.random.default_rng(0))
    rows = []
    for batch in ((1, 4) if quick else (1, 64)):
        for precision in common.precisions_here():
            fixed = emb.with_precision(precision)
            times = common.timeit(lambda: fixed.embed(faces[:batch], batch_size=batch),
                                  repeats=2 if quick else (3 if batch >= 64 else 5), warmup=2)
            t = float(np.median(times))
            rows.append({"what": "inception-resnet-v1 embed()", "precision": precision, "batch": batch,
                         "seconds": t, "images_per_s": batch / t})
    return rows


def child(quick: bool) -> dict:
    """One process's measurements (its oneDNN environment as set by the parent)."""
    from happyhouse.precision import USES, onednn_enabled, resolve_precision
    roof = common.rooflines(quick)
    rows = step_rows(quick, roof) + embedder_rows(quick)
    return {"rooflines": roof, "rows": rows, "load": [round(x, 2) for x in os.getloadavg()],
            "onednn_enabled": onednn_enabled(), "auto": {use: resolve_precision("auto", use) for use in USES}}


def run_child(setting: str, quick: bool) -> dict:
    """Run :func:`child` in a fresh Python with the environment of ``SETTINGS[setting]``."""
    env = {**os.environ, **SETTINGS[setting]}
    cmd = [sys.executable, "-m", "bench.precision", "--child"] + (["--quick"] if quick else [])
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=common.ROOT, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"child with oneDNN {setting} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for r in result["rows"]:
        r["onednn"] = setting
    return result


def fastest(rows, what, batch):
    """The fastest (onednn, precision) row for one measurement."""
    return min((r for r in rows if r["what"] == what and r["batch"] == batch), key=lambda r: r["seconds"])


def row(rows, what, batch, onednn, precision="float32"):
    """The one row of a measurement, setting and precision (None if not measured)."""
    return next((r for r in rows if (r["what"], r["batch"], r["onednn"], r["precision"]) ==
                 (what, batch, onednn, precision)), None)


def goals_for(rows) -> list[dict]:
    """The fastest setting of each measurement against fp32 with oneDNN off, and oneDNN on
    against off in fp32 on this CPU and held to AVX2."""
    goals = []
    for what, batch in sorted({(r["what"], r["batch"]) for r in rows}):
        base, best = row(rows, what, batch, "off"), fastest(rows, what, batch)
        goals.append(common.goal(f"{what}, batch {batch}: fastest setting vs fp32 with oneDNN off",
                                 "report", round(base["seconds"] / best["seconds"], 2), True,
                                 f"fastest: oneDNN {best['onednn']} {best['precision']} {best['seconds']:.3f} s "
                                 f"against {base['seconds']:.3f} s"))
        for isa in ISAS:
            off, on = row(rows, what, batch, "off" + isa), row(rows, what, batch, "on" + isa)
            if off and on:
                goals.append(common.goal(f"{what}, batch {batch}, fp32{isa}: oneDNN on vs off", "> 1 to turn it on",
                                         round(off["seconds"] / on["seconds"], 2), off["seconds"] > on["seconds"]))
    return goals


def main(argv=None) -> dict:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--child", action="store_true", help="measure in this process (internal)")
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.quick)))
        return {}
    results = {s: run_child(s, args.quick) for s in SETTINGS}
    rows = [r for s in SETTINGS for r in results[s]["rows"]]
    notes = [f"oneDNN {s} ({SETTINGS[s]}): TensorFlow says oneDNN {'on' if r['onednn_enabled'] else 'off'}; "
             f"rooflines fp32 {r['rooflines']['fp32_gflops']} / bf16 {r['rooflines']['bf16_gflops']} GFLOP/s; "
             f"load after {r['load']}; precision='auto' here: "
             + ", ".join(f"{use} {p} ({why})" for use, (p, why) in r["auto"].items()) for s, r in results.items()]
    common.write("precision", rows, goals_for(rows), results["on"]["rooflines"], args.out, notes,
                 columns=["what", "batch", "onednn", "precision", "seconds", "images_per_s", "GFLOP_s",
                          "share_fp32_roof", "share_bf16_roof"],
                 extra={"by_setting": {s: {k: v for k, v in r.items() if k != "rows"} for s, r in results.items()}})
    return {"rows": rows}


if __name__ == "__main__":
    main()
