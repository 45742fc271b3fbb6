"""Style-transfer step time at 300x400: plain fp32 (eager, compiled) vs ours (fast), and
whether the fast step paints the same picture.

For each loss network of ``happyhouse.style.networks`` that runs without downloads (VGG-19 with random
weights, whose time does not depend on their values, and the FaceNet offline network) one
Adam step on the generated image (``happyhouse.style.cost.StyleTransferCost``, the course's costs) is timed:

* ``eager fp32``: ``tf.GradientTape`` step run eagerly;
* ``compiled fp32``: ``happyhouse.style.optimize.make_train_step`` (``tf.function``), fp32: the baseline;
* ``compiled fp32 + XLA``: the same step with ``jit_compile=True``;
* ``fast``: compiled, the network pruned to the layers the costs use (``LossNetwork.activations``
  builds only those), with bfloat16 convolutions (oneDNN/AMX, grappler's automatic rewrite; the
  costs and the image stay fp32): ``make_train_step``'s ``precision="bfloat16"`` option.

Picture equality: the compiled fp32 and the fast step each run the same number of Adam steps
from the same start; the two results must have a total cost (both measured in fp32) within 5%
and an SSIM of at least 0.95 (``tf.image.ssim`` on the 8-bit pictures).

Share of the rooflines: a step costs about twice the forward FLOPs of the pruned network (the
input gradient of a convolution costs what the convolution costs; no weight gradients), plus
the Gram matrices; counted from the graph at the benchmark's size.

    python -m bench.style_step [--quick]
"""
from __future__ import annotations

import contextlib
import time

import numpy as np

from bench import common
from bench.common import count_flops

NETWORKS = ("vgg19-random", "facenet")


def images(size, rng):
    """Content and style (1, H, W, 3) normalised: louvre_small + monet where found, else random."""
    from happyhouse.style.images import normalize
    try:
        return (normalize("louvre_small.jpg", size), normalize("monet.jpg", size), "louvre_small.jpg + monet.jpg")
    except Exception:
        pics = [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(2)]
        return (*(normalize(p, size) for p in pics), "random pictures")


def forward_flops(model, layers, size) -> float:
    """FLOPs of one forward pass of ``model`` up to ``layers`` at ``size`` (1, H, W, 3)."""
    import tensorflow as tf
    graph = tf.function(lambda x: model.activations(x, layers)).get_concrete_function(
        tf.TensorSpec((1, *size, 3), tf.float32)).graph
    flops = count_flops(graph)
    if flops == 0 and model.name == "facenet":  # a wrapped GraphDef: import it with a fixed shape
        from happyhouse import data
        from happyhouse.style import facenet
        gd = tf.compat.v1.GraphDef()
        gd.ParseFromString(data.facenet_graph_path().read_bytes())
        gd = facenet.subgraph(gd, [facenet.FACENET_LAYERS[n].split(":")[0] for n in layers], "facenet")
        g = tf.Graph()
        with g.as_default():
            x = tf.compat.v1.placeholder(tf.float32, (1, *size, 3))
            tf.compat.v1.import_graph_def(gd, input_map={"input:0": x}, name="")
        flops = count_flops(g)
    return flops


def gram_flops(model, layers, size) -> float:
    acts = model.activations(np.zeros((1, *size, 3), np.float32), layers)
    return sum(2.0 * a.shape[-1] ** 2 * a.shape[1] * a.shape[2] for a in acts.values())


def _scalar(out) -> float:
    return float(out[0] if isinstance(out, (tuple, list)) else out)


def steppers(cost, xla=True):
    """name -> (make(variable) -> step function, context for its calls)."""
    import tensorflow as tf
    import keras
    from happyhouse.style.optimize import make_train_step

    def adam():
        return keras.optimizers.Adam(2.0, epsilon=1e-8)

    def body(variable, opt):
        def step():
            with tf.GradientTape() as tape:
                J, _, _ = cost(variable)
            opt.apply_gradients([(tape.gradient(J, variable), variable)])
            return J
        return step

    ways = {
        "eager fp32": (lambda v: body(v, adam()), contextlib.nullcontext),
        "compiled fp32": (lambda v: make_train_step(cost, v, adam(), precision="float32"), contextlib.nullcontext),
        "compiled fp32 + XLA": (lambda v: tf.function(body(v, adam()), jit_compile=True), contextlib.nullcontext),
        "fast (compiled, pruned, bf16)": (
            lambda v: make_train_step(cost, v, adam(), precision="bfloat16"), contextlib.nullcontext),
    }
    if not xla:
        del ways["compiled fp32 + XLA"]
    return ways


def run_steps(make, ctx, start, n):
    import tensorflow as tf
    variable = tf.Variable(start)
    step = make(variable)
    with ctx():
        for _ in range(n):
            step()
    return variable.numpy()


def ssim(a, b) -> float:
    import tensorflow as tf
    from happyhouse.style.images import deprocess
    x, y = (tf.constant(deprocess(i)[None], tf.float32) for i in (a, b))
    return float(tf.image.ssim(x, y, max_val=255.0)[0])


def main(argv=None) -> dict:
    args = common.parser(__doc__.splitlines()[0]).parse_args(argv)
    roof = common.rooflines(args.quick)
    import tensorflow as tf
    from happyhouse.style.cost import StyleTransferCost
    from happyhouse.style.networks import load_loss_network
    from happyhouse.style.start import NOISE_RATIO, noisy_image
    tf.get_logger().setLevel("ERROR")  # each variant builds its own tf.function: retracing warnings

    size = (96, 128) if args.quick else (300, 400)
    repeats = 2 if args.quick else 5
    equal_steps = 4 if args.quick else 60
    rng = np.random.default_rng(0)
    content, style, source = images(size, rng)
    rows, goals, notes = [], [], [f"images: {source}, size {size[0]}x{size[1]}"]
    for name in NETWORKS:
        model = load_loss_network(name, size, verbose=False)
        cost = StyleTransferCost(model, content, style)
        layers = [cost.content_layer] + [n for n, _ in cost.style_layers]
        flops = 2 * forward_flops(model, layers, size) + 3 * gram_flops(model, layers, size)
        start = noisy_image(content, NOISE_RATIO, seed=0)
        timings = {}
        # XLA folds the FaceNet GraphDef's constants for minutes before its first step: VGG-19 only
        for variant, (make, ctx) in steppers(cost, xla=name != "facenet").items():
            variable = tf.Variable(start)
            try:
                step = make(variable)
                with ctx():
                    times = common.timeit(lambda: _scalar(step()), repeats=2 if "eager" in variant else repeats,
                                          warmup=2)
            except Exception as err:  # e.g. XLA cannot compile this graph: say so, go on
                notes.append(f"{name}: {variant} failed: {type(err).__name__}: {str(err)[:200]}")
                continue
            t = float(np.median(times))
            timings[variant] = t
            rows.append({"network": name, "variant": variant, "s_per_step": t,
                         "GFLOP_s": flops / t / 1e9, "share_fp32_roof": flops / t / 1e9 / roof["fp32_gflops"],
                         "share_bf16_roof": flops / t / 1e9 / roof["bf16_gflops"]})
        base = timings.get("compiled fp32")
        for r in rows:
            if r["network"] == name and base:
                r["speedup_vs_compiled_fp32"] = base / r["s_per_step"]
        if name == "facenet":
            notes.append("facenet: no XLA row: XLA spends minutes constant-folding the frozen GraphDef "
                         "before its first step (measured > 60 s), for no gain seen on VGG-19's graph")
        notes.append(f"{name}: {flops / 1e9:.1f} GFLOP per step (2 x forward of the pruned network + Gram matrices)")

        # picture equality: fp32 compiled vs fast, same start, same number of steps
        ways = steppers(cost)
        t0 = time.perf_counter()
        ref = run_steps(*ways["compiled fp32"], start, equal_steps)
        fast = run_steps(*ways["fast (compiled, pruned, bf16)"], start, equal_steps)
        J_ref, J_fast = (float(cost(tf.constant(i))[0]) for i in (ref, fast))
        rel = abs(J_fast - J_ref) / J_ref
        s = ssim(ref, fast)
        notes.append(f"{name}: after {equal_steps} Adam steps: J fp32 {J_ref:.4g}, J fast {J_fast:.4g} "
                     f"(both measured in fp32), SSIM {s:.4f} ({time.perf_counter() - t0:.0f} s)")
        fast_t = timings.get("fast (compiled, pruned, bf16)")
        speed = base / fast_t if base and fast_t else float("nan")
        goals.append(common.goal(f"{name}: fast step vs compiled fp32 step", ">= 3x", round(speed, 2), speed >= 3))
        goals.append(common.goal(f"{name}: same picture", "cost within 5%, SSIM >= 0.95",
                                 {"cost_rel_diff": round(rel, 4), "ssim": round(s, 4)}, rel <= 0.05 and s >= 0.95))
    common.write("style_step", rows, goals, roof, args.out, notes,
                 columns=["network", "variant", "s_per_step", "speedup_vs_compiled_fp32", "GFLOP_s",
                          "share_fp32_roof", "share_bf16_roof"])
    return {"rows": rows, "goals": goals}


if __name__ == "__main__":
    main()
