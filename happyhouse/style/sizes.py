"""Picture sizes: --size LONG_SIDE or HxW, the coarse-to-fine schedule above 512 px, and the
style image's size (--style-scale). Sizes are (height, width) in pixels."""
from __future__ import annotations

import math
import os

#: Above this long side a run goes coarse to fine by default.
SINGLE_SCALE_MAX = 512
#: The default coarsest scale has a long side of about this many pixels.
COARSEST_LONG_SIDE = 256
#: Each finer scale runs this many times fewer iterations than the one before (a step there costs 4x).
ITERATION_DECAY = 3
#: Iterations when none are given: the course's 200 Adam steps, or 50 L-BFGS iterations, which reach
#: a lower cost than those (bench/results/style_vgg16.json: the same cost in 45 evaluations).
DEFAULT_ITERATIONS = {"adam": 200, "lbfgs": 50}
#: Memory a picture's pixel costs a step, at least (sizes.check_memory says how it is counted).
BYTES_PER_PIXEL = 3 * 1024


def parse_size(text: str):
    """"768" -> 768 (the long side, the content's aspect kept); "300x400" -> (300, 400).
    Raises ValueError with the accepted forms."""
    try:
        parts = [int(v) for v in str(text).lower().split("x")]
        if len(parts) not in (1, 2) or min(parts) < 1:
            raise ValueError
    except ValueError:
        raise ValueError(f"size must be LONG_SIDE or HEIGHTxWIDTH in pixels, e.g. 512 or 300x400; got {text!r}") from None
    return parts[0] if len(parts) == 1 else tuple(parts)


def resolve_size(size, content_hw) -> tuple[int, int]:
    """(height, width) of the result: ``size`` (H, W) as given, or an int long side with the
    content's aspect ratio (``content_hw``, its original (H, W))."""
    if isinstance(size, int):
        h, w = content_hw
        factor = size / max(h, w)
        return max(1, round(h * factor)), max(1, round(w * factor))
    return int(size[0]), int(size[1])


def default_scales(hw, min_side: int = 1) -> int:
    """Number of scales for a result of ``hw``: 1 up to SINGLE_SCALE_MAX px, else enough
    doublings from a coarsest long side of at most COARSEST_LONG_SIDE px (so 128-256 px; 1024 px: 3
    scales, 256 -> 512 -> 1024; 513 px: 128 -> 256 -> 513), never a coarsest short side under
    ``min_side`` (the network's minimum)."""
    if max(hw) <= SINGLE_SCALE_MAX:
        return 1
    n = 1 + math.ceil(math.log2(max(hw) / COARSEST_LONG_SIDE) - 1e-9)
    while n > 1 and min(hw) / 2 ** (n - 1) < min_side:
        n -= 1
    return n


def check_counts(iterations=None, scales=None) -> None:
    """ValueError when ``iterations`` or ``scales`` is given (not None) and under 1."""
    for name, count in (("scales", scales), ("iterations", iterations)):
        if count is not None and count < 1:
            raise ValueError(f"{name} must be at least 1, got {count}")


def scale_schedule(hw, scales: int, iterations: int) -> list[tuple[tuple[int, int], int]]:
    """Coarse-to-fine passes [((height, width), iterations)], coarsest first, ending at ``hw``.
    Each scale halves the next one's sides; the coarsest runs ``iterations`` steps and each
    finer scale a third as many as the one before (ITERATION_DECAY, at least 1): a step costs
    4x more there and only refines the upsampled coarser result (1024 px, 50 iterations:
    256 px 50, 512 px 16, 1024 px 5)."""
    check_counts(iterations, scales)
    passes = []
    for k in range(scales):
        factor = 2 ** (scales - 1 - k)
        size = (max(1, round(hw[0] / factor)), max(1, round(hw[1] / factor)))
        passes.append((size, max(1, iterations // ITERATION_DECAY ** k)))
    return passes


def default_optimizer(scales: int) -> str:
    """The optimiser when none is asked for: the course's Adam at one scale; L-BFGS coarse to
    fine, where it reached a lower cost in 57% of Adam's time at 1024 px (docs/style_transfer.md)."""
    return "lbfgs" if scales > 1 else "adam"


def check_style_scale(style_scale: float) -> None:
    """ValueError unless ``style_scale`` is a positive finite number."""
    if not (style_scale > 0 and math.isfinite(style_scale)):
        raise ValueError(f"style scale must be positive and finite (--style-scale), got {style_scale:g}")


def memory_bytes() -> int | None:
    """This machine's physical memory in bytes (None where the system does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(hw, style_scale: float = 1.0, available=None) -> None:
    """ValueError when a picture of ``hw`` (or its style image) needs more memory than the machine
    has (``available`` bytes, default all of it), at BYTES_PER_PIXEL: a step keeps every VGG layer's
    activations up to conv5_1 for the gradient (about 330 floats a pixel) and as much again going back."""
    available = memory_bytes() if available is None else available
    style_hw = style_size(hw, style_scale)
    pixels = max(hw[0] * hw[1], math.prod(style_hw))
    if available and pixels * BYTES_PER_PIXEL > available:
        most = int(math.sqrt(available / BYTES_PER_PIXEL))
        (h, w), what, option = ((hw, "picture", "--size") if hw[0] * hw[1] >= math.prod(style_hw) else
                                (style_hw, f"style image (--style-scale {style_scale:g})", "--size or --style-scale"))
        raise ValueError(f"a {h}x{w} {what} needs about {pixels * BYTES_PER_PIXEL / 2 ** 30:,.0f} GiB "
                         f"(about {BYTES_PER_PIXEL // 1024} KiB a pixel for the loss network's activations), more than "
                         f"this machine's {available / 2 ** 30:.0f} GiB: use a smaller {option} (at most about "
                         f"{most}x{most} here)")


def style_size(content_hw, style_scale: float = 1.0) -> tuple[int, int]:
    """The style image's (height, width): the content's size (as the course) times ``style_scale``
    (0.5: style features half as large in the result; 2: twice as large)."""
    check_style_scale(style_scale)
    return max(1, round(content_hw[0] * style_scale)), max(1, round(content_hw[1] * style_scale))


def size_argument(text: str):
    """:func:`parse_size` for argparse: its message as an argparse.ArgumentTypeError."""
    import argparse
    try:
        return parse_size(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
