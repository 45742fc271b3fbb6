"""How much full-size work the fast plan (happyhouse.style.fast) needs, in which precision and with
which optimiser: for each pair, the course's run (200 Adam steps from the noisy start, seed 0: the
target) and full-size passes from the fast plan's coarse pass (L-BFGS at half size from the
course's noisy start, kept in the pixel range, in the pass's precision): L-BFGS in float32 and in
bfloat16 (the plan's, in the precision "auto" picks; left out where this process has no bfloat16
kernels: :func:`passes_here`) and the course's Adam ("auto" precision, from the float32 coarse pass: the plan before
L-BFGS was bounded). Every picture is scored as ``bench.nst_whole`` scores it (the fp32 cost of the
8-bit picture, the default network, 300x400): L-BFGS after each iteration, Adam every 5 steps.
Writes each pass's costs, where it crosses the target, and a plot (``--plot``).

    python -m bench.fast_plan [--quick] [--steps 100] [--iterations 30] [--plot docs/nst_fast_plan.png]
"""
from __future__ import annotations

import time
from pathlib import Path

from bench import common

#: (content, style): the course's pair, a fine texture, a grainy one.
PAIRS = [("louvre_small.jpg", "monet.jpg"), ("louvre_small.jpg", "stone_style.jpg"),
         ("persian_cat_content.jpg", "sandstone.jpg")]
#: The full-size passes measured: (the optimiser, its precision; the coarse pass's: float32 for Adam).
PASSES = [("lbfgs", "float32"), ("lbfgs", "bfloat16"), ("adam", "auto")]
EVERY = 5
#: Where the plan runs each precision (the plot's legend).
PLAN_WHERE = {"float32": "on CPUs without bfloat16", "bfloat16": "on CPUs with AMX or AVX512-BF16"}


class Pair:
    """The loss network with one pair's costs at the full and the half size."""

    def __init__(self, model, content, style, size):
        from happyhouse.style import images
        from happyhouse.style.cost import StyleTransferCost
        self.model, self.content, self.size = model, content, size
        self.half = (size[0] // 2, size[1] // 2)
        self.costs = {}
        for hw in (size, self.half):
            model.set_input_size(*hw)
            self.costs[hw] = StyleTransferCost(model, images.normalize(content, hw), [images.normalize(style, hw)])

    def score(self, image) -> float:
        """fp32 total cost at full size of ``image`` (1, H, W, 3) once written as 8 bits."""
        from happyhouse.style import images
        self.model.set_input_size(*self.size)
        return common.picture_cost(self.costs[self.size], images.deprocess(image), self.size)

    def adam(self, begin, steps, checks=()) -> tuple:
        """Adam (the course's, "auto" precision) at full size from ``begin``: (image, [(step, cost)])."""
        import keras
        from happyhouse.style.optimize import make_train_step
        self.model.set_input_size(*self.size)
        self.model["input"].assign(begin)
        step = make_train_step(self.costs[self.size], self.model["input"], keras.optimizers.Adam(2.0, epsilon=1e-8))
        scored = []
        for i in range(1, steps + 1):
            step()
            if i in checks:
                scored.append((i, self.score(self.model["input"].numpy())))
        return self.model["input"].numpy(), scored

    def lbfgs(self, begin, iterations, precision) -> tuple:
        """The plan's full-size pass, L-BFGS in ``precision`` in the pixel range, from ``begin``:
        (image, [(iteration, cost)] scored after each iteration, evaluations)."""
        from happyhouse.style import images
        from happyhouse.style.optimize import lbfgs_minimize
        self.model.set_input_size(*self.size)
        scored = []
        result = lbfgs_minimize(self.costs[self.size], begin, iterations, bounds=images.pixel_range(),
                                precision=precision, callback=lambda i, image, _: scored.append((i + 1, self.score(image))))
        return result["image"], scored, result["evaluations"]

    def coarse(self, iterations: int, precision: str):
        """The fast plan's first pass, from the course's noisy start in ``precision`` (in the pixel
        range, as the plan's), upsampled to full size (1, H, W, 3)."""
        from happyhouse.style import fast, images, start
        from happyhouse.style.optimize import lbfgs_minimize
        self.model.set_input_size(*self.half)
        begin = start.initial_image(images.normalize(self.content, self.half), fast.FAST_INIT, start.NOISE_RATIO, 0)
        result = lbfgs_minimize(self.costs[self.half], begin, iterations, bounds=images.pixel_range(),
                                precision=precision)
        return images.normalize(images.deprocess(result["image"]), self.size)


def passes_here() -> list:
    """PASSES less the bfloat16 ones where this process has no bfloat16 kernels."""
    return [(o, p) for o, p in PASSES if p in common.precisions_here() + ("auto",)]


def measure_pair(pair: Pair, steps: int, iterations: int, course_steps: int, coarse_iterations: int) -> list[dict]:
    """The course's row (the target) then one row per full-size pass in :func:`passes_here`."""
    from happyhouse.style import images, start
    t0 = time.perf_counter()
    noisy = start.initial_image(images.normalize(pair.content, pair.size), "noise", start.NOISE_RATIO, 0)
    target = pair.score(pair.adam(noisy, course_steps)[0])
    rows = [{"optimizer": "course", "precision": "auto", "target": target, "seconds": time.perf_counter() - t0}]
    coarse = {}
    for optimizer, precision in passes_here():
        t0 = time.perf_counter()
        coarse_precision = precision if optimizer == "lbfgs" else "float32"
        if coarse_precision not in coarse:          # one coarse pass a precision, shared by its full-size passes
            coarse[coarse_precision] = pair.coarse(coarse_iterations, coarse_precision)
        begin = coarse[coarse_precision]
        evaluations = None
        if optimizer == "lbfgs":
            _, scored, evaluations = pair.lbfgs(begin, iterations, precision)
        else:
            _, scored = pair.adam(begin, steps, set(range(EVERY, steps + 1, EVERY)))
        rows.append({"optimizer": optimizer, "precision": precision, "target": target,
                     "seconds": time.perf_counter() - t0,
                     "crosses_target_at": next((i for i, cost in scored if cost <= target), None),
                     "evaluations": evaluations, "costs": scored, "vs_target_at_end": scored[-1][1] / target})
    return rows


def plot(results: dict, path: Path) -> None:
    """One panel a pair: each full-size pass's cost over its iterations or steps, the target dashed."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(4.2 * len(results), 4.2))
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    for ax, (name, rows) in zip(axes, results.items()):
        for r in rows[1:]:
            what = (f"L-BFGS in {r['precision']} (the plan {PLAN_WHERE[r['precision']]})" if r["optimizer"] == "lbfgs"
                    else "Adam steps (the course's), from the float32 coarse pass")
            ax.semilogy(*zip(*r["costs"]), "o-", ms=3, label=what)
        ax.axhline(rows[0]["target"], ls="--", color="k", lw=1, label="the course's 200 Adam steps")
        ax.set(title=name, xlabel="full-size L-BFGS iterations or Adam steps", ylabel="cost of the written picture")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=110)


def main(argv=None) -> dict:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100, help="full-size Adam steps scored (default 100)")
    p.add_argument("--iterations", type=int, default=30, help="full-size L-BFGS iterations scored (default 30)")
    p.add_argument("--plot", type=Path, default=None, help="write the trajectories' plot here")
    args = p.parse_args(argv)
    from happyhouse.precision import resolve_precision
    from happyhouse.style import fast
    from happyhouse.style.networks import load_loss_network
    size, network = ((64, 80), "vgg19-random") if args.quick else ((300, 400), "auto")
    steps, iterations, course_steps, coarse = (10, 4, 10, 5) if args.quick else \
        (args.steps, args.iterations, 200, fast.COARSE_ITERATIONS)
    roof = common.rooflines(args.quick)
    model = load_loss_network(network, size, verbose=False)
    results, rows = {}, []
    for content, style in PAIRS:
        name = f"{Path(content).stem} + {Path(style).stem}"
        results[name] = measure_pair(Pair(model, content, style, size), steps, iterations, course_steps, coarse)
        rows += [{"pair": name, **{k: v for k, v in r.items() if k != "costs"}} for r in results[name]]
    goals = [plan_goal(rows, precision, fast.FINE_ITERATIONS[precision]) for precision in common.precisions_here()]
    if args.plot is not None:
        plot(results, args.plot)
    common.write("fast_plan" + ("_quick" if args.quick else ""), rows, goals, roof, args.out,
                 [f"{network} at {size[0]}x{size[1]}; coarse pass {coarse} L-BFGS iterations at half size in the "
                  f"pixel range, in the L-BFGS row's precision (float32 before Adam); full-size L-BFGS in the pixel "
                  f"range, scored after each iteration; Adam lr 2.0 in the 'auto' precision, scored every {EVERY} "
                  f"steps; seconds include the coarse pass (where it ran) and the scoring; 'auto' here: "
                  f"{resolve_precision('auto', 'style')[0]}"],
                 columns=["pair", "optimizer", "precision", "seconds", "target", "crosses_target_at", "evaluations",
                          "vs_target_at_end"],
                 extra={"costs": {name: {f"{r['optimizer']}/{r['precision']}": r.get("costs") for r in rs}
                                  for name, rs in results.items()}})
    return {"rows": rows, "goals": goals}


def plan_goal(rows: list[dict], precision: str, budget: int) -> dict:
    """Whether the fast plan's ``budget`` full-size L-BFGS iterations in ``precision`` reach the
    course's cost on every pair measured."""
    needed = [r["crosses_target_at"] for r in rows if r["optimizer"] == "lbfgs" and r["precision"] == precision]
    return common.goal(f"the fast plan's {budget} full-size L-BFGS iterations in {precision} reach the course's "
                       "cost on every pair", f"each pair crosses its target by {budget}", str(needed),
                       all(n is not None and n <= budget for n in needed))


if __name__ == "__main__":
    main()
