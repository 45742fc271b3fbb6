"""The style-transfer driver: :func:`style_transfer` paints a content picture in one or more
styles, its controls in one :class:`TransferSettings`. It picks the loss network, plans the
scales (coarse to fine above 512 px), runs the optimiser at each scale from the upsampled
coarser result, keeps the content's colours when asked, saves on Ctrl-C and resumes."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from happyhouse import outputs
from happyhouse.precision import choose_precision, resolve_precision
from happyhouse.runtime import import_tensorflow
from happyhouse.style import checkpoint, colors, contact_sheet, fast, images, networks, optimize, sizes, start
from happyhouse.style.choices import DEFAULT_OUTPUT_DIR
from happyhouse.style.cost import StyleTransferCost, normalise_weights

tf = import_tensorflow()


@dataclass
class TransferSettings:
    """The controls of :func:`style_transfer` (defaults: the course's run).

    * ``network``: a name in networks.NETWORKS or a LossNetwork; ``vgg_path``: VGG-19's weights file.
    * ``iterations``: default 200 Adam steps (the course's) or 50 L-BFGS iterations; with
      several ``scales`` (coarse-to-fine passes, default 1 up to 512 px) the coarsest runs
      that many, each finer one a third as many, from the upsampled result.
    * ``size``: (H, W), or an int long side keeping the content's aspect (default 300x400).
    * ``alpha``, ``beta``: the content and style weights; ``learning_rate``: Adam's.
    * ``optimizer``: "adam" (the default at one scale), "lbfgs" (the default coarse to fine) or
      a Keras optimizer; ``precision``: "auto" (bfloat16 where this CPU gains by it, see
      happyhouse.precision), "float32" or "bfloat16", for either optimizer.
    * ``style_weights``: mixes several styles' Gram matrices (normalised; default equal).
    * ``preserve_colors``: None, "luminance" (the result's luminance with the content's chroma)
      or "histogram" (the style's colours matched to the content's before the run).
    * ``tv_weight``: total-variation weight against grain; ``style_scale``: the style image's
      size relative to the content's.
    * ``init``: "noise" (content with ``noise_ratio``, default 0.6, of noise), "content" or
      "random"; ``seed``: the noise's.
    * ``fast``: the ``nst`` command's default (happyhouse.style.fast): where no ``optimizer``,
      ``iterations`` or ``scales`` are given and the size is single-scale, a half-size L-BFGS
      pass from ``init`` (default fast.FAST_INIT: the course's noisy start) then fast.FINE_ITERATIONS
      L-BFGS iterations at full size, both in ``precision`` ("auto": bfloat16 where this CPU gains
      by it). False (the library's and notebook's default): the course's run.
    * ``output_dir``: default DEFAULT_OUTPUT_DIR (False: nothing saved); ``save_every``,
      ``print_every``, ``progress`` (a progress bar).
    * ``resume``: go on from ``state_file`` (default OUT/nst_state.npz), written on SIGINT
      with ``saved_settings`` (a JSON-able dict).
    """
    network: object = "auto"
    iterations: int | None = None
    size: object = None
    alpha: float = 10
    beta: float = 40
    learning_rate: float = 2.0
    output_dir: object = None
    seed: int | None = None
    vgg_path: object = None
    optimizer: object = None
    print_every: int = 20
    save_every: int = 20
    progress: bool = True
    precision: str = "auto"
    style_weights: list | None = None
    preserve_colors: object = None
    tv_weight: float = 0.0
    init: str | None = "noise"
    noise_ratio: float | None = None
    scales: int | None = None
    style_scale: float = 1.0
    resume: bool = False
    state_file: object = None
    saved_settings: dict | None = None
    fast: bool = False


def style_transfer(content, style, network="auto", iterations=None, size=None, alpha=10, beta=40, **controls):
    """Paint ``content`` in the style of ``style`` (paths, course image names or (H, W, 3)
    arrays; ``style`` may be a list). The keywords are :class:`TransferSettings`' fields.
    Returns (generated (H, W, 3) uint8, optimize.CostHistory)."""
    settings = TransferSettings(network=network, iterations=iterations, size=size, alpha=alpha, beta=beta,
                                **controls)
    return run(content, list(style) if isinstance(style, (list, tuple)) else [style], settings)


@dataclass
class Plan:
    """What a run does: the content and the styles, (H, W, 3) uint8 each at its own size, the
    result's (H, W), the loss network, the scales [((H, W), iterations)], each scale's (optimizer,
    precision), the state file and the checked controls."""
    content_rgb: np.ndarray
    style_rgbs: list
    final_size: tuple
    model: object
    schedule: list
    passes: list
    state_file: Path | None
    output_dir: Path | None
    settings: TransferSettings


def run(content, styles: list, settings: TransferSettings):
    """:func:`style_transfer` with its controls in ``settings``. MemoryError (one line) where the
    picture does not fit in memory."""
    plan = make_plan(content, styles, settings)
    try:
        return paint(plan, settings)
    except tf.errors.ResourceExhaustedError:
        h, w = plan.final_size
        raise MemoryError(f"out of memory painting a {h}x{w} picture with {plan.model.name}: use a smaller "
                          "--size") from None


def paint(plan: Plan, settings: TransferSettings):
    """Run ``plan``: (generated (H, W, 3) uint8, optimize.CostHistory)."""
    saved = load_state(plan) if settings.resume else None
    if saved is not None:
        check_output_pictures(plan.output_dir, plan.schedule, plan.settings.save_every, saved["iteration"])
        adopt_interrupted_pictures(plan, saved["iteration"])
    if plan.output_dir is not None and not settings.resume:
        say_replaced(plan.output_dir, contact_sheet.clear_saved(plan.output_dir))
    history, generated, first = optimize.CostHistory(plan.model.name), None, 0
    guard = checkpoint.sigint_flag() if plan.state_file is not None else contextlib.nullcontext()
    with guard as flag:
        for k, (hw, steps) in enumerate(plan.schedule):
            if saved is not None and k < saved["scale"]:
                first += steps
                continue
            generated, part, saved = run_scale(plan, k, generated, first, saved, flag)
            history.extend(part)
            first += steps
    result = finish(plan, generated, plan.final_size)
    write_outputs(plan, result)
    return result, history


def say_replaced(folder, names) -> None:
    """One line naming the earlier nst run's pictures removed from ``folder`` (none: nothing said)."""
    if names:
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        print(f"replacing the pictures an earlier nst run wrote in {folder}: {shown}")


#: The largest weight the float32 cost can hold (a Python float: comparing with it casts nothing).
FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_numbers(s: TransferSettings) -> None:
    """ValueError when alpha, beta or the TV weight is not a finite number >= 0, alpha and beta are both 0,
    or the seed is negative."""
    for option, value in (("--alpha", s.alpha), ("--beta", s.beta), ("--tv-weight", s.tv_weight)):
        if not np.isfinite(value) or value < 0 or value > FLOAT32_MAX:
            raise ValueError(f"{option} must be a finite number >= 0 (at most {FLOAT32_MAX:.3g}, "
                             f"float32's largest), got {value}")
    if s.alpha == 0 and s.beta == 0:
        raise ValueError("--alpha and --beta are both 0: the cost is 0 whatever the picture; give either a weight")
    if s.seed is not None and s.seed < 0:
        raise ValueError(f"--seed must be a whole number >= 0, got {s.seed}")


def check_output_pictures(output_dir, schedule, save_every, first=0) -> None:
    """ValueError when the run, going on from iteration ``first``, would overwrite ``<i>.png`` files in
    ``output_dir`` that nst did not write."""
    if output_dir is None or not save_every or not output_dir.is_dir():
        return
    total = sum(steps for _, steps in schedule)
    names = [f"{i}.png" for i in range(0, total, save_every) if i >= first]
    foreign = contact_sheet.foreign_pictures(output_dir, names)
    if foreign:
        raise ValueError(f"{output_dir}: this run saves its progress as {', '.join(foreign)} there, and those files "
                         "were not written by nst (not in its record "
                         f"{contact_sheet.RECORD_NAME}); move them away or choose another -o folder")


def adopt_interrupted_pictures(plan: Plan, iteration) -> None:
    """Record the ``<i>.png`` before ``iteration`` in the output folder as the interrupted run's (its
    saved state shows nst wrote them), so its contact sheet shows them and a later run replaces them."""
    every = plan.settings.save_every
    if plan.output_dir is not None and every:
        names = [f"{i}.png" for i in range(0, iteration, every)]
        contact_sheet.record(plan.output_dir, *(name for name in names if (plan.output_dir / name).is_file()))


def make_plan(content, styles, settings: TransferSettings) -> Plan:
    """Check the controls, read the pictures, check the output folder can be written, then load the
    network and plan the scales: bad input fails before any slow work."""
    s = replace(settings, preserve_colors=colors.METHODS[0] if settings.preserve_colors is True
                else settings.preserve_colors)
    if s.preserve_colors not in (None, False) + colors.METHODS:
        raise ValueError(f"preserve_colors must be one of {', '.join(colors.METHODS)}, got {s.preserve_colors!r}")
    if s.init is not None and s.init not in start.INIT_MODES:
        raise ValueError(f"init must be one of {', '.join(start.INIT_MODES)}, got {s.init!r}")
    s.style_weights = normalise_weights(s.style_weights, len(styles))
    s.noise_ratio = start.NOISE_RATIO if s.noise_ratio is None else s.noise_ratio
    sizes.check_counts(s.iterations, s.scales)
    start.check_noise_ratio(s.noise_ratio)
    sizes.check_style_scale(s.style_scale)
    check_numbers(s)
    content_rgb = images.read_image(content)
    style_rgbs = [images.read_image(style) for style in styles]
    output_dir = DEFAULT_OUTPUT_DIR if s.output_dir is None else s.output_dir or None
    output_dir = Path(output_dir) if output_dir is not None else None
    state_file = s.state_file if s.state_file is not None or output_dir is None else checkpoint.state_path(output_dir)
    for folder in {output_dir, None if state_file is None else Path(state_file).parent} - {None}:
        outputs.check_folder(folder)  # before the work, not after it
    final_size = sizes.resolve_size(s.size, content_rgb.shape[:2]) if s.size is not None else networks.DEFAULT_SIZE
    sizes.check_memory(final_size, s.style_scale)
    model = networks.load_loss_network(s.network, final_size, s.vgg_path)
    schedule, passes = plan_passes(s, final_size, model.min_size)
    check_sizes(model, schedule, s.style_scale)
    if not s.resume:  # resuming, the saved state says where the run goes on (paint checks then)
        check_output_pictures(output_dir, schedule, s.save_every)
    return Plan(content_rgb, style_rgbs, final_size, model, schedule, passes, state_file, output_dir, s)


def uses_fast_plan(s: TransferSettings, final_size, min_side) -> bool:
    """Whether ``s`` asks for the fast plan: ``fast`` with no optimizer, iterations or scales
    given, at a size that runs at one scale by default."""
    return (s.fast and s.optimizer is None and s.iterations is None and s.scales is None
            and sizes.default_scales(final_size, min_side) == 1)


def plan_passes(s: TransferSettings, final_size, min_side) -> tuple[list, list]:
    """(schedule [((H, W), iterations)], [(optimizer, precision)] per scale); sets ``s.init`` when
    None and resolves "auto". The fast plan prints one line saying what it runs and why."""
    if uses_fast_plan(s, final_size, min_side):
        s.init = s.init or fast.FAST_INIT
        s.precision, why = resolve_precision(s.precision, "style")
        steps = fast.fast_schedule(final_size, min_side, s.precision)
        print(fast.describe(steps, why, s.init))
        return [(hw, n) for hw, n, _, _ in steps], [(opt, prec) for _, _, opt, prec in steps]
    s.init = s.init or "noise"
    scales = s.scales or sizes.default_scales(final_size, min_side)
    optimizer = s.optimizer or sizes.default_optimizer(scales)
    iterations = s.iterations
    if iterations is None:
        iterations = sizes.DEFAULT_ITERATIONS.get(optimizer, sizes.DEFAULT_ITERATIONS["adam"])
    schedule = sizes.scale_schedule(final_size, scales, iterations)
    s.precision = choose_precision(s.precision, "style")
    return schedule, [(optimizer, s.precision)] * len(schedule)


def check_sizes(model, schedule, style_scale) -> None:
    """ValueError when a picture or style image of a scale is under the network's minimum side."""
    for hw, _ in schedule:
        for what, (h, w) in (("picture", hw), ("style image", sizes.style_size(hw, style_scale))):
            if min(h, w) < model.min_size:
                raise ValueError(f"the {model.name} loss network needs at least {model.min_size} px a side; the "
                                 f"{what} would be {h}x{w} at the coarsest of {len(schedule)} scale(s): use a larger "
                                 "--size, fewer --scales or a larger --style-scale")


def scale_cost(plan: Plan, hw) -> tuple:
    """(content image (1, H, W, 3), StyleTransferCost) of one scale ``hw``."""
    s = plan.settings
    content_image = images.normalize(plan.content_rgb, hw)
    style_size = sizes.style_size(hw, s.style_scale)
    style_rgbs = [images.load_image(rgb, style_size) for rgb in plan.style_rgbs]
    if s.preserve_colors == "histogram":
        style_rgbs = [colors.match_color_histogram(rgb, images.load_image(plan.content_rgb, hw)) for rgb in style_rgbs]
    plan.model.set_input_size(*hw)
    cost = StyleTransferCost(plan.model, content_image, [images.normalize(rgb, style_size) for rgb in style_rgbs],
                             s.alpha, s.beta, style_weights=s.style_weights, tv_weight=s.tv_weight)
    return content_image, cost


def run_scale(plan: Plan, k, generated, first, saved, flag):
    """Optimise at scale ``k`` from the saved state, the start image or the upsampled coarser
    ``generated``. Returns (generated (1, H, W, 3), CostHistory, the saved state still to use)."""
    s, (hw, steps) = plan.settings, plan.schedule[k]
    content_image, cost = scale_cost(plan, hw)
    done, opt_state = 0, None
    if saved is not None and k == saved["scale"]:
        begin, done, opt_state = saved["image"], saved["iteration"] - first, saved["optimizer_state"]
        saved = None
    elif generated is None:
        begin = start.initial_image(content_image, s.init, s.noise_ratio, s.seed)
    else:  # the coarser result, upsampled
        begin = images.normalize(images.deprocess(generated), hw)
    if done >= steps:
        return begin, optimize.CostHistory(plan.model.name), saved
    optimizer, precision = plan.passes[k]
    options = optimize.LoopOptions(optimizer, s.learning_rate, plan.output_dir, s.save_every, s.print_every,
                                   s.progress, precision, first + done, opt_state, flag.is_set if flag else None)
    try:
        generated, part = optimize.optimise(plan.model, begin, cost, steps - done, options)
    except checkpoint.Interrupted as stop:
        save_interrupted(plan, stop, k, hw)
        raise
    return generated, part, saved


def save_interrupted(plan: Plan, stop: checkpoint.Interrupted, k, hw) -> None:
    """On Ctrl-C: write the state (and the picture into the output folder); ``stop`` gets
    ``scale``, ``saved`` (the paths written) and ``picture`` (H, W, 3) uint8."""
    stop.scale = k
    stop.saved = [checkpoint.save(plan.state_file, stop, plan.settings.saved_settings, run_record(plan))]
    stop.picture = finish(plan, stop.image, hw)
    if plan.output_dir is not None:
        stop.saved.insert(0, plan.output_dir / contact_sheet.RESULT_NAME)
        images.write_rgb(stop.saved[0], stop.picture)


def finish(plan: Plan, image, hw) -> np.ndarray:
    """The picture people get from ``image`` (1, H, W, 3): (H, W, 3) uint8, colours kept when asked."""
    rgb = images.deprocess(image)
    if plan.settings.preserve_colors == "luminance":
        content = plan.content_rgb if plan.content_rgb.shape[:2] == hw else images.load_image(plan.content_rgb, hw)
        rgb = colors.luminance_transfer(rgb, content)
    return rgb


def write_outputs(plan: Plan, result) -> None:
    """The final picture (colours kept) and the contact sheet; a finished run's state removed."""
    if plan.output_dir is not None:
        if plan.settings.preserve_colors == "luminance":
            images.write_rgb(plan.output_dir / contact_sheet.RESULT_NAME, result)
        contact_sheet.write(plan.output_dir, result)
    if plan.state_file is not None and Path(plan.state_file).exists():
        Path(plan.state_file).unlink()  # finished: a later --resume must not go back to it


def run_record(plan: Plan) -> dict:
    """What makes a run's picture once it has started (JSON-able): its pictures (digests), network,
    scales and passes, and the settings of its cost; a resumed run must match it."""
    s = plan.settings
    return {"content": images.digest(plan.content_rgb), "styles": [images.digest(rgb) for rgb in plan.style_rgbs],
            "network": plan.model.name, "scales": [[*hw, n] for hw, n in plan.schedule],
            "passes": [[opt if isinstance(opt, str) else type(opt).__name__, prec] for opt, prec in plan.passes],
            "alpha": s.alpha, "beta": s.beta, "tv_weight": s.tv_weight, "style_weights": s.style_weights,
            "style_scale": s.style_scale, "preserve_colors": s.preserve_colors, "learning_rate": s.learning_rate}


def load_state(plan: Plan) -> dict:
    """The saved state for --resume, checked against this run (its pictures, scales and settings);
    prints where it goes on."""
    state_file, schedule = plan.state_file, plan.schedule
    if state_file is None:
        raise checkpoint.NoSavedState("--resume needs the output folder of the interrupted run (-o)")
    saved = checkpoint.load(state_file)
    k = saved["scale"]
    if not 0 <= k < len(schedule) or tuple(np.shape(saved["image"])[1:3]) != tuple(schedule[k][0]):
        raise ValueError(f"{state_file}: the saved run was at a {np.shape(saved['image'])[1]}x"
                         f"{np.shape(saved['image'])[2]} picture (scale {k + 1}); this one does not have that size "
                         "there. Resume with the same --size and --scales (or without images: the saved settings)")
    differ = checkpoint.run_differences(saved.get("run", {}), run_record(plan))
    if differ:
        raise ValueError(f"{state_file}: the interrupted run was not this one: {'; '.join(differ)}. Resume with "
                         "the same pictures and settings, or start again without resume")
    print(f"resumed from iteration {saved['iteration']}")
    return saved
