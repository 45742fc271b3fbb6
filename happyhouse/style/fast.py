"""The ``nst`` command's default plan, the fast one: the course's 200-step Adam cost with less work.

At one scale (up to sizes.SINGLE_SCALE_MAX) it runs two passes instead of the course's 200 Adam
steps: COARSE_ITERATIONS of L-BFGS (float32: its line search needs exact costs) at half the size,
starting from the content, then FINE_STEPS of the course's Adam (learning rate 2.0) at the full
size from the upsampled result, in the precision "auto" picks (happyhouse.precision: bfloat16
where the CPU computes in it and it was measured as good). On louvre_small + monet
at 300x400 (VGG-16) this ends below the total cost of the course's 200 Adam steps (fp32) in a
fraction of the time; ``python -m bench.nst_whole`` measures it against the course's run.
"""
from __future__ import annotations

#: L-BFGS iterations of the half-size pass (from the content).
COARSE_ITERATIONS = 30
#: Adam steps (the course's learning rate) of the full-size pass, from the upsampled coarse result.
FINE_STEPS = 15
#: The coarse pass runs at the full size divided by this.
COARSE_FACTOR = 2
#: Where the coarse pass starts: the content itself (it converges faster than the course's noisy start).
FAST_INIT = "content"


def fast_schedule(final_size, min_side: int) -> list:
    """[((H, W), iterations, optimizer, precision or None)] of the fast plan for ``final_size``
    (H, W): the half-size L-BFGS pass then the full-size Adam pass; only the L-BFGS pass (50
    iterations) when half the size is under ``min_side``, the loss network's minimum.
    A precision of None means the run's ("auto": resolved for style transfer)."""
    coarse = (round(final_size[0] / COARSE_FACTOR), round(final_size[1] / COARSE_FACTOR))
    if min(coarse) < min_side:
        return [(tuple(final_size), 50, "lbfgs", "float32")]
    return [(coarse, COARSE_ITERATIONS, "lbfgs", "float32"), (tuple(final_size), FINE_STEPS, "adam", None)]


def describe(passes, why: str) -> str:
    """One line saying what the fast plan runs: ``passes`` [((H, W), iterations, optimizer, precision)]."""
    parts = [f"{n} {'L-BFGS iterations' if opt == 'lbfgs' else 'Adam steps'} at {hw[0]}x{hw[1]} in {prec}"
             for hw, n, opt, prec in passes]
    return (f"Fast plan: {' then '.join(parts)} ({why}; the coarse pass starts from the content); "
            "--optimizer adam runs the course's 200 steps.")
