"""Make the pictures of docs/style_transfer.md's "Controls" section: one PNG per control, each
showing generated pictures only (never the course's own content or style pictures).

    COURSE_DATA=... python tools/make_style_pictures.py [--size 150x200] [--iterations 50]
    COURSE_DATA=... python tools/make_style_pictures.py --only style_scale --size 300x400 --iterations 40 \
        --optimizer lbfgs --precision float32     # the --style-scale picture in the docs
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT))

import nst_utils  # noqa: E402
from happyhouse.style import colors, sizes  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=sizes.size_argument, default=(150, 200))
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--precision", default="bfloat16")
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--only", choices=("style_scale",), default=None, help="make this picture only")
    args = p.parse_args(argv)
    content = nst_utils.load_image("louvre_small.jpg", args.size)

    def run(**kw):
        kw = {"content": "louvre_small.jpg", "style": "monet.jpg", "iterations": args.iterations, "size": args.size,
              "seed": 0, "output_dir": False, "print_every": 0, "progress": False, "precision": args.precision,
              "optimizer": args.optimizer, **kw}
        picture, history = nst_utils.style_transfer(**kw)
        print(kw.get("preserve_colors"), kw.get("style"), history.network, f"J {history.total[-1]:.4g}", flush=True)
        return picture

    def sheet(name, pictures: dict, title):
        nst_utils.show_images(pictures, title).savefig(DOCS / name, dpi=72)
        print("wrote", DOCS / name, flush=True)

    if args.only == "style_scale":
        sheet("style_scale.png", {f"--style-scale {s:g}": run(style_scale=s) for s in (0.5, 2)}, "--style-scale")
        return
    plain = run()
    gap = lambda pic: f"chroma gap {colors.chroma_gap(pic, content):.1f}"  # noqa: E731
    lum = colors.luminance_transfer(plain, content)  # what preserve_colors="luminance" returns, without a rerun
    hist = run(preserve_colors="histogram")
    sheet("style_preserve_colors.png", {f"plain ({gap(plain)})": plain, f"luminance ({gap(lum)})": lum,
                                        f"histogram ({gap(hist)})": hist}, "--preserve-colors")
    blend = run(style=["monet.jpg", "stone_style.jpg"], style_weights=[1, 1])
    sheet("style_blend.png", {"monet only": plain, "monet 1 : stone_style 1": blend},
          "several styles, --style-weights")
    sheet("style_tv.png", {"--tv-weight 0": plain, "--tv-weight 1e6": run(tv_weight=1e6)}, "--tv-weight")
    sheet("style_init.png", {"--init noise (the course's)": plain, "--init content": run(init="content")}, "--init")
    sheet("style_scale.png", {"--style-scale 1": plain, "--style-scale 2": run(style_scale=2)}, "--style-scale")


if __name__ == "__main__":
    main()
