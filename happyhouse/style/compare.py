"""Loss networks side by side: one content image painted in several styles by each network,
with the seconds each step took, and a grid picture of the results.

The grid shows the generated pictures only, labelled by network and style name (the content
and style images themselves are course data and stay out of anything committed).

    python -m happyhouse.style.compare [--out docs/nst_networks.png] [--iterations 12] [--size 300x400]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from happyhouse import data, image_io
from happyhouse.errors import WeightsError
from happyhouse.style import sizes, transfer

NETWORKS = ("vgg16", "facenet", "vgg19-random")
STYLES = ("monet.jpg", "stone_style.jpg")
LABELS = {"vgg16": "VGG-16 ImageNet", "vgg19": "VGG-19 ImageNet", "facenet": "FaceNet",
          "vgg19-random": "VGG-19 random"}


def compare_networks(content="louvre_small.jpg", styles=STYLES, networks=NETWORKS, iterations=12,
                     optimizer="lbfgs", size=None, seed=1, done=None) -> dict:
    """Paint ``content`` in each style with each network (``transfer.style_transfer``, the
    course's costs and start, ``iterations`` of ``optimizer``). ``done``: results already made,
    {(network, style): (picture, history)}, reused. Returns {(network, style): (picture
    (H, W, 3) uint8, CostHistory)} in networks-then-styles order; seconds per step are
    ``history.seconds_per_step``."""
    results = {}
    for network in networks:
        for style in styles:
            key = (network, str(style))
            if done and key in done:
                results[key] = done[key]
                continue
            print(f"{LABELS.get(network, network)}, {Path(str(style)).stem}: {iterations} {optimizer} iterations")
            results[key] = transfer.style_transfer(
                content, style, network=network, iterations=iterations, size=size, output_dir=False,
                seed=seed, optimizer=optimizer, print_every=0, progress=False)
    return results


def seconds_table(results) -> str:
    """One line per result: network, style, iterations, seconds per iteration, final cost."""
    lines = [f"{'network':18s} {'style':12s} {'iters':>5s} {'s/iter':>7s} {'final J':>10s}"]
    for (network, style), (_, history) in results.items():
        lines.append(f"{LABELS.get(network, network):18s} {Path(style).stem:12s} {len(history.total):5d} "
                     f"{history.seconds_per_step:7.2f} {history.total[-1]:10.4g}")
    return "\n".join(lines)


def grid_figure(results, title=None):
    """A matplotlib figure: one row per style, one column per network, each generated picture
    titled "<network> · <style name>" with its seconds per step. Returns the figure."""
    import matplotlib.pyplot as plt
    networks = list(dict.fromkeys(n for n, _ in results))
    styles = list(dict.fromkeys(s for _, s in results))
    fig, axes = plt.subplots(len(styles), len(networks), figsize=(4.0 * len(networks), 3.3 * len(styles)),
                             squeeze=False)
    for (network, style), (picture, history) in results.items():
        ax = axes[styles.index(style)][networks.index(network)]
        ax.imshow(picture)
        ax.set_title(f"{LABELS.get(network, network)} · {Path(style).stem}\n"
                     f"{len(history.total)} steps, {history.seconds_per_step:.2f} s/step", fontsize=10)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m happyhouse.style.compare", description=__doc__.splitlines()[0])
    parser.add_argument("--content", default="louvre_small.jpg")
    parser.add_argument("--styles", nargs="+", default=list(STYLES))
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS))
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--optimizer", choices=("adam", "lbfgs"), default="lbfgs")
    parser.add_argument("--size", type=sizes.size_argument, default=(300, 400), help="HEIGHTxWIDTH (default 300x400)")
    parser.add_argument("--out", type=Path, default=Path("docs/nst_networks.png"))
    args = parser.parse_args(argv)
    size = args.size
    import matplotlib
    matplotlib.use("Agg")
    try:
        results = compare_networks(args.content, args.styles, args.networks, args.iterations, args.optimizer, size)
    except (data.DataNotFoundError, image_io.ImageReadError, WeightsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(seconds_table(results))
    fig = grid_figure(results, f"{Path(args.content).stem}, {args.iterations} {args.optimizer} iterations, "
                               f"{size[0]}x{size[1]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
