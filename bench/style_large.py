"""A large picture: louvre.jpg in the style of monet_800600.jpg at 1024 px (long side), coarse to
fine on happyhouse.style.transfer.style_transfer's defaults for that size (3 scales, 256 -> 512 -> 1024; L-BFGS,
50 iterations at the coarsest, a third as many at each finer one) vs a single-scale run at 1024
with the same optimiser for the same number of full-size iterations, from the course's noisy start.

Both results are scored by the same cost at 1024 px. Peak memory: the process's resident set
size, sampled every 0.1 s during each run (psutil). ``--picture P.png`` saves both results
(P.png, P_single.png) and a side-by-side figure of them (P_vs_single.png).

    python -m bench.style_large [--quick] [--optimizer adam|lbfgs] [--iterations N] [--network NAME]
"""
from __future__ import annotations

import os
import time
from pathlib import Path


from bench import common

GOAL_SECONDS = 300


def main(argv=None) -> dict:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=None, help="long side (default 1024; --quick 160)")
    p.add_argument("--iterations", type=int, default=None,
                   help="iterations at the coarsest scale (default: style_transfer's, 50 L-BFGS or 200 Adam)")
    p.add_argument("--optimizer", choices=("adam", "lbfgs"), default=None,
                   help="default: style_transfer's for several scales (L-BFGS)")
    p.add_argument("--precision", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--network", default="auto")
    p.add_argument("--picture", type=Path, default=None, help="also save the coarse-to-fine result here")
    args = common.parse_precision_args(p, argv)
    roof = common.rooflines(args.quick)
    import tensorflow as tf
    from happyhouse.style import images, networks, sizes
    tf.get_logger().setLevel("ERROR")

    long_side = args.size or (160 if args.quick else 1024)
    content_rgb = images.read_image("louvre.jpg")
    hw = sizes.resolve_size(long_side, content_rgb.shape[:2])
    model = networks.load_loss_network(args.network, hw)
    n_scales = sizes.default_scales(hw, model.min_size) if not args.quick else 2
    optimizer = args.optimizer or sizes.default_optimizer(n_scales)
    iterations = args.iterations or (8 if args.quick else sizes.DEFAULT_ITERATIONS[optimizer])
    schedule = sizes.scale_schedule(hw, n_scales, iterations)
    full_steps = schedule[-1][1]
    load_before = [round(x, 2) for x in os.getloadavg()]
    common_args = dict(seed=0, output_dir=False, optimizer=optimizer, precision=args.precision, print_every=0,
                       progress=False)

    picture, c2f_s, c2f_mib = timed_transfer(content_rgb, model, iterations, long_side, n_scales, common_args)
    single, single_s, single_mib = timed_transfer(content_rgb, model, full_steps, long_side, 1, common_args)
    J_c2f, J_single = full_size_costs(model, content_rgb, hw, (picture, single))
    if args.picture:
        images.write_rgb(args.picture, picture)
        images.write_rgb(args.picture.with_name(args.picture.stem + "_single" + args.picture.suffix), single)
        save_side_by_side(args.picture.with_name(args.picture.stem + "_vs_single.png"), picture, single, schedule,
                          optimizer, (c2f_s, single_s), (J_c2f, J_single))

    passes = " -> ".join(f"{h}x{w} ({n})" for (h, w), n in schedule)
    rows = [
        {"run": f"coarse to fine, {optimizer} iterations: {passes}", "seconds": round(c2f_s, 1), "full_size_steps": full_steps,
         "cost_at_full_size": J_c2f, "peak_rss_mib": round(c2f_mib)},
        {"run": f"single scale {hw[0]}x{hw[1]} from the noisy start, {optimizer} iterations: {full_steps}",
         "seconds": round(single_s, 1), "full_size_steps": full_steps, "cost_at_full_size": J_single,
         "peak_rss_mib": round(single_mib)},
    ]
    load_after = [round(x, 2) for x in os.getloadavg()]
    notes = [f"network {model.name} ({model.description}); precision {args.precision}; content louvre.jpg, style "
             f"monet_800600.jpg; {hw[0]}x{hw[1]}",
             f"load average (1, 5, 15 min) before {load_before}, after {load_after}"]
    ratio = J_single / J_c2f
    goals = [common.goal(f"{long_side} px coarse to fine on {common.machine()['cores']} cores", f"<= {GOAL_SECONDS} s",
                         round(c2f_s, 1), c2f_s <= GOAL_SECONDS),
             common.goal("cost at full size: single scale / coarse to fine, same full-size steps", "> 1",
                         round(ratio, 3), ratio > 1, "lower cost = closer to the style and content")]
    common.write("style_large", rows, goals, roof, args.out, notes)
    return {"rows": rows, "goals": goals}


def timed_transfer(content_rgb, model, iterations: int, long_side: int, scales: int, settings: dict) -> tuple:
    """(picture (H, W, 3) uint8, seconds, peak RSS MiB) of one style_transfer of the Louvre in
    Monet's style at ``long_side`` px over ``scales`` scales."""
    from happyhouse.style import transfer
    with common.PeakMemory() as memory:
        t0 = time.perf_counter()
        picture, _ = transfer.style_transfer(content_rgb, "monet_800600.jpg", model, iterations, long_side,
                                             scales=scales, **settings)
        seconds = time.perf_counter() - t0
    return picture, seconds, memory.peak_mib


def full_size_costs(model, content_rgb, hw, pictures) -> list[float]:
    """The float32 total cost at ``hw`` of each picture (H, W, 3) uint8 against the Louvre and Monet."""
    import tensorflow as tf
    from happyhouse.style import images
    from happyhouse.style.cost import StyleTransferCost
    model.set_input_size(*hw)
    cost = StyleTransferCost(model, images.normalize(content_rgb, hw), images.normalize("monet_800600.jpg", hw))
    score = tf.function(lambda x: cost(x)[0])
    return [float(score(tf.constant(images.normalize(picture, hw)))) for picture in pictures]


def save_side_by_side(path, c2f, single, schedule, optimizer, seconds, costs):
    """Both results side by side with their times and costs (a PNG at ``path``)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.9))
    passes = " -> ".join(f"{w}x{h}: {n}" for (h, w), n in schedule)
    titles = (f"coarse to fine ({passes} {optimizer} it.)", f"single scale ({schedule[-1][1]} {optimizer} it.)")
    for ax, image, title, s, J in zip(axes, (c2f, single), titles, seconds, costs):
        ax.imshow(image)
        ax.set_title(f"{title}\n{s:.0f} s, cost {J:.4g}", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    main()
