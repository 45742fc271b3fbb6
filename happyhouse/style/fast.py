"""The ``nst`` command's default plan, the fast one: the course's 200-step Adam cost with less work.

At one scale (up to sizes.SINGLE_SCALE_MAX) it runs two L-BFGS passes instead of the course's 200
Adam steps, both in float32 (its line search needs exact costs) and both kept inside the pixels a
picture can hold (images.pixel_range: unbounded, L-BFGS paints values the written picture clips,
and stalled at 1.8x the course's cost on a fine texture): COARSE_ITERATIONS at half the size from
the course's noisy start, then FINE_ITERATIONS at the full size from the upsampled result.
``--precision bfloat16`` runs FINE_STEPS of the course's Adam in bfloat16 as the second pass instead
(the plan before L-BFGS was bounded). The counts cover the slowest of the pairs measured at 300x400
(VGG-16) to reach the course's 200-step cost: louvre_small + monet, louvre_small + stone_style (a
fine texture: the slowest) and persian_cat_content + sandstone (``python -m bench.fast_plan``).
``python -m bench.nst_whole [--images CONTENT STYLE]`` measures the whole run against the course's.
"""
from __future__ import annotations

from happyhouse.style import start

#: L-BFGS iterations of the half-size pass (from FAST_INIT).
COARSE_ITERATIONS = 30
#: L-BFGS iterations of the full-size pass, from the upsampled coarse result: the stone texture
#: crossed the course's cost after 14 (Monet after 6, the sandstone 12).
FINE_ITERATIONS = 16
#: Adam steps (the course's learning rate) of the full-size pass when bfloat16 is asked for: the
#: stone crossed the course's cost after 65 (Monet after 10, the sandstone 45).
FINE_STEPS = 80
#: The coarse pass runs at the full size divided by this.
COARSE_FACTOR = 2
#: Where the coarse pass starts: the course's noisy content (the texture grows from the noise; with
#: the coarse pass unbounded, the content start stalled the stone at 1.5x the course's cost).
FAST_INIT = "noise"
#: Why the plan runs in float32 unless bfloat16 is asked for.
WHY_FLOAT32 = "L-BFGS needs float32's exact costs; --precision bfloat16 runs Adam steps at full size instead"


def fast_schedule(final_size, min_side: int, precision: str = "auto") -> list:
    """[((H, W), iterations, optimizer, precision)] of the fast plan for ``final_size`` (H, W): the
    half-size L-BFGS pass then the full-size one (``precision`` "bfloat16": Adam steps in bfloat16);
    only an L-BFGS pass of 50 iterations when half the size is under ``min_side``, the loss
    network's minimum."""
    coarse = (round(final_size[0] / COARSE_FACTOR), round(final_size[1] / COARSE_FACTOR))
    if min(coarse) < min_side:
        return [(tuple(final_size), 50, "lbfgs", "float32")]
    fine = (tuple(final_size), FINE_STEPS, "adam", "bfloat16") if precision == "bfloat16" else \
        (tuple(final_size), FINE_ITERATIONS, "lbfgs", "float32")
    return [(coarse, COARSE_ITERATIONS, "lbfgs", "float32"), fine]


def describe(passes, why: str, init: str = FAST_INIT) -> str:
    """One line saying what the fast plan runs: ``passes`` [((H, W), iterations, optimizer, precision)]
    from the start ``init`` (an --init mode)."""
    parts = [f"{n} {'L-BFGS iterations' if opt == 'lbfgs' else 'Adam steps'} at {hw[0]}x{hw[1]} in {prec}"
             for hw, n, opt, prec in passes]
    return (f"Fast plan: {' then '.join(parts)} ({why}; from {start.INIT_WORDS[init]}); "
            "--optimizer adam runs the course's 200 steps.")
