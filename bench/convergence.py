"""Convergence: L-BFGS (scipy's L-BFGS-B, as Gatys and jcjohnson/neural-style use) vs the
course's Adam (learning rate 2.0): steps and seconds to reach the total cost that Adam reaches
after 200 steps, on louvre_small.jpg + monet.jpg with the FaceNet loss network (VGG-16: bench.style_vgg16).

Both optimisers start from the same noisy image (``generate_noise_image(seed=0)``) and
minimise the same ``happyhouse.style.cost.StyleTransferCost``. One Adam step and one L-BFGS function
evaluation each cost one forward + backward pass, so "steps" for L-BFGS counts evaluations
(its iterations, a few evaluations fewer, are reported too).

    python -m bench.convergence [--quick] [--precision float32|bfloat16 (Adam's)]
"""
from __future__ import annotations

import time

import numpy as np

from bench import common
from bench.style_step import images

ADAM_STEPS = 200


def adam_run(cost, start, steps, precision):
    """The course's loop from a cold start (tracing included, as for L-BFGS): (final cost, seconds, history)."""
    import tensorflow as tf
    import keras
    from happyhouse.style.optimize import make_train_step
    variable = tf.Variable(start)
    t0 = time.perf_counter()
    step = make_train_step(cost, variable, keras.optimizers.Adam(2.0, epsilon=1e-8), precision=precision)
    history = []  # (cost before the step, seconds at its end), as the course's loop prints them
    for _ in range(steps):
        history.append((float(step()[0]), time.perf_counter() - t0))
    seconds = time.perf_counter() - t0
    return float(cost(tf.constant(variable.numpy()))[0]), seconds, history


def lbfgs_run(cost, start, target, max_iterations):
    """L-BFGS until the cost is <= target, from a cold start: dict with iterations, evaluations,
    seconds, final_cost, history [(cost, seconds)] per iteration."""
    from happyhouse.style.optimize import lbfgs_minimize
    history = []
    t0 = time.perf_counter()
    result = lbfgs_minimize(
        cost, start, max_iterations=max_iterations, target=target,
        callback=lambda i, image, costs: history.append((costs[0], time.perf_counter() - t0)))
    return {"iterations": result["iterations"], "evaluations": result["evaluations"],
            "seconds": result["seconds"], "final_cost": result["costs"][-1][0] if result["costs"] else float("nan"),
            "history": history, "how": "happyhouse.style.optimize.lbfgs_minimize"}


def plot(adam, lbfgs, target, path, network):
    """Cost against seconds for both optimisers, with Adam's 200-step cost as the target line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.semilogy([t for _, t in adam], [j for j, _ in adam], label=f"Adam lr 2.0 ({len(adam)} steps)")
    ax.semilogy([t for _, t in lbfgs], [j for j, _ in lbfgs], "o-", ms=3, label=f"L-BFGS ({len(lbfgs)} iterations)")
    ax.axhline(target, color="gray", ls="--", lw=1, label="Adam's final cost")
    ax.set(xlabel="seconds (cold start)", ylabel="total cost J", title=f"louvre_small + monet, {network}")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> dict:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--precision", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--network", default="facenet", help="loss network (default facenet; VGG-16: bench.style_vgg16)")
    args = common.parse_precision_args(p, argv)
    roof = common.rooflines(args.quick)
    import tensorflow as tf
    from happyhouse.style.cost import StyleTransferCost
    from happyhouse.style.networks import load_loss_network
    from happyhouse.style.start import NOISE_RATIO, noisy_image
    tf.get_logger().setLevel("ERROR")

    size = (96, 128) if args.quick else (300, 400)
    steps = 10 if args.quick else ADAM_STEPS
    network = args.network
    content, style, source = images(size, np.random.default_rng(0))  # the course's, else random pictures
    model = load_loss_network(network, size, verbose=False)
    cost = StyleTransferCost(model, content, style)
    start = noisy_image(content, NOISE_RATIO, seed=0)
    J0 = float(cost(tf.constant(start))[0])

    J_adam, adam_s, adam_history = adam_run(cost, start, steps, args.precision)
    lb = lbfgs_run(cost, start, J_adam, max_iterations=steps)
    reached = lb["final_cost"] <= J_adam
    rows = [
        {"optimizer": f"Adam lr 2.0 ({steps} steps)", "steps": steps, "evaluations": steps,
         "seconds": adam_s, "final_cost": J_adam, "reached_target": True},
        {"optimizer": "L-BFGS-B (scipy)", "steps": lb["iterations"], "evaluations": lb["evaluations"],
         "seconds": lb["seconds"], "final_cost": lb["final_cost"], "reached_target": reached},
    ]
    ratio = lb["evaluations"] / steps
    notes = [f"images: {source}",
             f"network {model.name} ({model.description}); {size[0]}x{size[1]}; Adam precision {args.precision}, "
             f"L-BFGS float32 (lbfgs_minimize's default precision); start cost {J0:.4g}; target = Adam's cost "
             f"after {steps} steps = {J_adam:.4g}; both timed from a cold start (one trace each)",
             f"L-BFGS: {lb['how']}",
             "L-BFGS steps = iterations; evaluations = forward+backward passes (each costs one Adam step)",
             "L-BFGS cost per iteration: " + ", ".join(f"{j:.3g}" for j, _ in lb["history"][:40])]
    goals = [common.goal("L-BFGS evaluations to reach Adam's 200-step cost", f"<= {steps / 3:.0f} (a third)",
                         lb["evaluations"], reached and lb["evaluations"] <= steps / 3),
             common.goal("L-BFGS seconds vs Adam's", "less", round(lb["seconds"] / adam_s, 3),
                         reached and lb["seconds"] < adam_s, "ratio of seconds")]
    plot(adam_history, lb["history"], J_adam, args.out / "convergence.png", model.name)
    common.write("convergence", rows, goals, roof, args.out, notes,
                 extra={"evaluations_ratio": ratio, "lbfgs_history": lb["history"], "adam_history": adam_history})
    return {"rows": rows, "goals": goals}


if __name__ == "__main__":
    main()
