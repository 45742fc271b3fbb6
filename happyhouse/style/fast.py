"""The ``nst`` command's default plan, the fast one: the course's 200-step Adam cost with less work.

At one scale (up to sizes.SINGLE_SCALE_MAX) it runs two L-BFGS passes instead of the course's 200
Adam steps, both in the run's precision ("auto": bfloat16 where this CPU computes it faster,
happyhouse.precision) and both kept inside the pixels a picture can hold (images.pixel_range:
unbounded, L-BFGS paints values the written picture clips, and stalled at 1.8x the course's cost on
a fine texture): COARSE_ITERATIONS at half the size from the course's noisy start, then
FINE_ITERATIONS at the full size from the upsampled result. The counts cover the slowest of the
pairs measured at 300x400 (VGG-16) to reach the course's 200-step cost in either precision:
louvre_small + monet, louvre_small + stone_style (a fine texture: the slowest) and
persian_cat_content + sandstone (``python -m bench.fast_plan``).
``python -m bench.nst_whole [--images CONTENT STYLE]`` measures the whole run against the course's.
"""
from __future__ import annotations

from happyhouse.style import sizes, start

#: L-BFGS iterations of the half-size pass (from FAST_INIT).
COARSE_ITERATIONS = 30
#: L-BFGS iterations of the full-size pass per precision, from the upsampled coarse result: the
#: stone texture crossed the course's cost after 14 in float32 and 15 in bfloat16 (Monet after 6,
#: the sandstone 12-13); two more for pairs slower than the stone.
FINE_ITERATIONS = {"float32": 16, "bfloat16": 17}
#: L-BFGS iterations of the one pass run where half the size is under the network's minimum: the
#: --optimizer lbfgs default.
SMALL_ITERATIONS = sizes.DEFAULT_ITERATIONS["lbfgs"]
#: The coarse pass runs at the full size divided by this.
COARSE_FACTOR = 2
#: Where the coarse pass starts: the course's noisy content (the texture grows from the noise; with
#: the coarse pass unbounded, the content start stalled the stone at 1.5x the course's cost).
FAST_INIT = "noise"


def fast_schedule(final_size, min_side: int, precision: str = "float32") -> list:
    """[((H, W), iterations, optimizer, precision)] of the fast plan for ``final_size`` (H, W): the
    half-size L-BFGS pass then the full-size one, both in ``precision`` (resolved: "float32" or
    "bfloat16"); only one L-BFGS pass of SMALL_ITERATIONS when half the size is under ``min_side``,
    the loss network's minimum."""
    coarse = (round(final_size[0] / COARSE_FACTOR), round(final_size[1] / COARSE_FACTOR))
    if min(coarse) < min_side:
        return [(tuple(final_size), SMALL_ITERATIONS, "lbfgs", precision)]
    return [(coarse, COARSE_ITERATIONS, "lbfgs", precision),
            (tuple(final_size), FINE_ITERATIONS[precision], "lbfgs", precision)]


def describe(passes, why: str, init: str = FAST_INIT) -> str:
    """One line saying what the fast plan runs and in which precision: ``passes``
    [((H, W), iterations, optimizer, precision)], ``why`` that precision, from the start ``init``."""
    parts = [f"{n} L-BFGS iterations at {hw[0]}x{hw[1]}" for hw, n, _, _ in passes]
    return (f"Fast plan: {' then '.join(parts)} in {passes[0][3]} ({why}; from {start.INIT_WORDS[init]}); "
            "--optimizer adam runs the course's 200 steps.")
