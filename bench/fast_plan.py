"""How much full-size work the fast plan (happyhouse.style.fast) needs, with which optimiser and
from which start: for each pair, the course's run (200 Adam steps from the noisy start, seed 0: the
target) and full-size passes from the fast plan's coarse pass (L-BFGS at half size from the
course's noisy start or from the content, kept in the pixel range): L-BFGS (float32, kept in the
pixel range: the plan's) and the course's Adam ("auto" precision: the plan with --precision
bfloat16, and the plan before). Every picture is scored as ``bench.nst_whole`` scores it (the fp32
cost of the 8-bit picture, the default network, 300x400): L-BFGS after each iteration, Adam every 5
steps. Writes each pass's costs, where it crosses the target, and a plot (``--plot``).

    python -m bench.fast_plan [--quick] [--steps 100] [--iterations 30] [--plot docs/nst_fast_plan.png]
"""
from __future__ import annotations

import time
from pathlib import Path

from bench import common

#: (content, style): the course's pair, a fine texture, a grainy one.
PAIRS = [("louvre_small.jpg", "monet.jpg"), ("louvre_small.jpg", "stone_style.jpg"),
         ("persian_cat_content.jpg", "sandstone.jpg")]
#: The full-size passes measured: (the coarse pass's start, the optimiser).
PASSES = [("noise", "lbfgs"), ("noise", "adam"), ("content", "adam")]
#: How each start reads in the plot.
START_NAMES = {"content": "the content", "noise": "the course's noisy start"}
EVERY = 5


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

    def lbfgs(self, begin, iterations) -> tuple:
        """The plan's full-size pass, float32 L-BFGS in the pixel range, from ``begin``:
        (image, [(iteration, cost)] scored after each iteration, evaluations)."""
        from happyhouse.style import images
        from happyhouse.style.optimize import lbfgs_minimize
        self.model.set_input_size(*self.size)
        scored = []
        result = lbfgs_minimize(self.costs[self.size], begin, iterations, bounds=images.pixel_range(),
                                callback=lambda i, image, _: scored.append((i + 1, self.score(image))))
        return result["image"], scored, result["evaluations"]

    def coarse(self, init: str, iterations: int):
        """The fast plan's first pass from ``init`` (in the pixel range, as the plan's), upsampled to
        full size (1, H, W, 3)."""
        from happyhouse.style import images, start
        from happyhouse.style.optimize import lbfgs_minimize
        self.model.set_input_size(*self.half)
        begin = start.initial_image(images.normalize(self.content, self.half), init, start.NOISE_RATIO, 0)
        result = lbfgs_minimize(self.costs[self.half], begin, iterations, bounds=images.pixel_range())
        return images.normalize(images.deprocess(result["image"]), self.size)


def measure_pair(pair: Pair, steps: int, iterations: int, course_steps: int, coarse_iterations: int) -> list[dict]:
    """The course's row (the target) then one row per full-size pass in PASSES."""
    from happyhouse.style import images, start
    t0 = time.perf_counter()
    noisy = start.initial_image(images.normalize(pair.content, pair.size), "noise", start.NOISE_RATIO, 0)
    target = pair.score(pair.adam(noisy, course_steps)[0])
    rows = [{"start": "course", "optimizer": "adam", "target": target, "seconds": time.perf_counter() - t0}]
    coarse = {}
    for init, optimizer in PASSES:
        t0 = time.perf_counter()
        if init not in coarse:                     # one coarse pass a start, shared by its full-size passes
            coarse[init] = pair.coarse(init, coarse_iterations)
        begin = coarse[init]
        evaluations = None
        if optimizer == "lbfgs":
            _, scored, evaluations = pair.lbfgs(begin, iterations)
        else:
            _, scored = pair.adam(begin, steps, set(range(EVERY, steps + 1, EVERY)))
        rows.append({"start": init, "optimizer": optimizer, "target": target, "seconds": time.perf_counter() - t0,
                     "crosses_target_at": next((i for i, cost in scored if cost <= target), None),
                     "evaluations": evaluations, "costs": scored, "vs_target_at_end": scored[-1][1] / target})
    return rows


def plot(results: dict, path: Path) -> None:
    """One panel a pair: each full-size pass's cost over its iterations or steps, the target dashed."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(4.2 * len(results), 3.9))
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    for ax, (name, rows) in zip(axes, results.items()):
        for r in rows[1:]:
            what = "L-BFGS (the plan)" if r["optimizer"] == "lbfgs" else "Adam"
            ax.semilogy(*zip(*r["costs"]), "o-", ms=3, label=f"{what}, coarse pass from {START_NAMES[r['start']]}")
        ax.axhline(rows[0]["target"], ls="--", color="k", lw=1, label="the course's 200 Adam steps")
        ax.set(title=name, xlabel="full-size L-BFGS iterations or Adam steps", ylabel="cost of the written picture")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)


def main(argv=None) -> dict:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100, help="full-size Adam steps scored (default 100)")
    p.add_argument("--iterations", type=int, default=30, help="full-size L-BFGS iterations scored (default 30)")
    p.add_argument("--plot", type=Path, default=None, help="write the trajectories' plot here")
    args = p.parse_args(argv)
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
    goals = [plan_goal(rows, "lbfgs", fast.FINE_ITERATIONS, "L-BFGS iterations"),
             plan_goal(rows, "adam", fast.FINE_STEPS, "Adam steps (--precision bfloat16)")]
    if args.plot is not None:
        plot(results, args.plot)
    common.write("fast_plan" + ("_quick" if args.quick else ""), rows, goals, roof, args.out,
                 [f"{network} at {size[0]}x{size[1]}; coarse pass {coarse} L-BFGS iterations at half size in the "
                  f"pixel range; full-size L-BFGS in float32 in the pixel range, scored after each iteration; Adam "
                  f"lr 2.0 in the 'auto' precision, scored every {EVERY} steps; seconds include the scoring"],
                 columns=["pair", "start", "optimizer", "seconds", "target", "crosses_target_at", "evaluations",
                          "vs_target_at_end"],
                 extra={"costs": {name: {f"{r['start']}/{r['optimizer']}": r.get("costs") for r in rs}
                                  for name, rs in results.items()}})
    return {"rows": rows, "goals": goals}


def plan_goal(rows: list[dict], optimizer: str, budget: int, unit: str) -> dict:
    """Whether the fast plan's ``budget`` full-size ``unit`` of ``optimizer`` (from its start) reach
    the course's cost on every pair measured."""
    from happyhouse.style import fast
    needed = [r["crosses_target_at"] for r in rows if r["start"] == fast.FAST_INIT and r["optimizer"] == optimizer]
    return common.goal(f"the fast plan's {budget} full-size {unit} reach the course's cost on every pair",
                       f"each pair crosses its target by {budget}", str(needed),
                       all(n is not None and n <= budget for n in needed))


if __name__ == "__main__":
    main()
