"""A large picture: louvre.jpg in the style of monet_800600.jpg at 1024 px (long side), coarse to
fine (nst_utils.style_transfer's default schedule for that size) vs a single-scale run at 1024
for the same number of full-size steps, with the default loss network.

Both runs use the course's Adam (learning rate 2.0) and costs. Coarse to fine: the coarsest
scale (about 256 px) runs ``--iterations`` steps, each finer one half as many, each from the
upsampled result; single scale: the same number of 1024-px steps as the finest pass, from the
course's noisy start (timed over ``--baseline-steps`` steps and extrapolated when fewer).
Both results are scored by the same cost at 1024 px. Peak memory: the process's resident set
size, sampled every 0.1 s during each run (psutil).

    python -m bench.style_large [--quick] [--precision bfloat16|float32] [--network NAME]
"""
from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench import common

GOAL_SECONDS = 300


class PeakRSS:
    """Context manager: the peak resident memory (MiB) of this process while inside."""

    def __enter__(self):
        import psutil
        self._proc, self.peak_mib, self._stop = psutil.Process(), 0.0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while True:
            self.peak_mib = max(self.peak_mib, self._proc.memory_info().rss / 2**20)
            if self._stop.wait(0.1):
                return

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def main(argv=None) -> dict:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=None, help="long side (default 1024; --quick 160)")
    p.add_argument("--iterations", type=int, default=None, help="steps at the coarsest scale (default 200)")
    p.add_argument("--baseline-steps", type=int, default=None,
                   help="single-scale steps actually run (default: as many as the finest pass)")
    p.add_argument("--precision", choices=("float32", "bfloat16"), default="bfloat16")
    p.add_argument("--network", default="auto")
    p.add_argument("--picture", type=Path, default=None, help="also save the coarse-to-fine result here")
    args = p.parse_args(argv)
    roof = common.rooflines(args.quick)
    import keras
    import tensorflow as tf
    import nst_utils
    from happyhouse.style import sizes
    tf.get_logger().setLevel("ERROR")

    long_side = args.size or (160 if args.quick else 1024)
    iterations = args.iterations or (8 if args.quick else 200)
    content_rgb = nst_utils.read_image("louvre.jpg")
    hw = sizes.resolve_size(long_side, content_rgb.shape[:2])
    model = nst_utils.load_loss_network(args.network, hw)
    n_scales = sizes.default_scales(hw, model.min_size) if not args.quick else 2
    schedule = sizes.scale_schedule(hw, n_scales, iterations)
    full_steps = schedule[-1][1]
    load_before = [round(x, 2) for x in __import__("os").getloadavg()]

    with tempfile.TemporaryDirectory() as tmp, PeakRSS() as mem_c2f:
        t0 = time.perf_counter()
        picture, history = nst_utils.style_transfer(
            content_rgb, "monet_800600.jpg", model, iterations, long_side, seed=0, output_dir=Path(tmp),
            scales=n_scales, precision=args.precision, print_every=0, progress=False)
        c2f_s = time.perf_counter() - t0

    content = nst_utils.reshape_and_normalize_image(content_rgb, hw)
    cost = nst_utils.StyleTransferCost(model, content, nst_utils.reshape_and_normalize_image("monet_800600.jpg", hw))
    score = tf.function(lambda x: cost(x)[0])
    J_c2f = float(score(tf.constant(nst_utils.reshape_and_normalize_image(picture, hw))))

    baseline_steps = min(args.baseline_steps or full_steps, full_steps)
    with PeakRSS() as mem_single:
        model.set_input_size(*hw)
        model["input"].assign(nst_utils.generate_noise_image(content, seed=0))
        step = nst_utils.make_train_step(cost, model["input"], keras.optimizers.Adam(2.0, epsilon=1e-8), args.precision)
        t0 = time.perf_counter()
        step()  # the trace, timed apart
        trace_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(baseline_steps - 1):
            step()
        per_step = (time.perf_counter() - t0) / max(baseline_steps - 1, 1)
    single_s = trace_s + per_step * (full_steps - 1)
    J_single = float(score(tf.constant(model["input"].numpy()))) if baseline_steps == full_steps else float("nan")
    if args.picture:
        nst_utils._write_rgb(args.picture, picture)

    passes = " -> ".join(f"{h}x{w} ({n} steps)" for (h, w), n in schedule)
    rows = [
        {"run": f"coarse to fine: {passes}", "seconds": round(c2f_s, 1), "full_size_steps": full_steps,
         "cost_at_full_size": J_c2f, "peak_rss_mib": round(mem_c2f.peak_mib)},
        {"run": f"single scale {hw[0]}x{hw[1]}" + ("" if baseline_steps == full_steps else
                                                   f" (timed {baseline_steps} steps, extrapolated)"),
         "seconds": round(single_s, 1), "full_size_steps": full_steps, "cost_at_full_size": J_single,
         "peak_rss_mib": round(mem_single.peak_mib)},
    ]
    load_after = [round(x, 2) for x in __import__("os").getloadavg()]
    notes = [f"network {model.name} ({model.description}); precision {args.precision}; content louvre.jpg, style "
             f"monet_800600.jpg; {hw[0]}x{hw[1]}",
             f"load average (1, 5, 15 min) before {load_before}, after {load_after}: the 2 cores are shared",
             f"single scale: trace {trace_s:.1f} s + {per_step:.2f} s per {hw[0]}x{hw[1]} step"]
    ratio = J_single / J_c2f if J_single == J_single else None
    goals = [common.goal(f"{long_side} px coarse to fine on {common.machine()['cores']} cores", f"<= {GOAL_SECONDS} s",
                         round(c2f_s, 1), c2f_s <= GOAL_SECONDS),
             common.goal("cost at full size: single scale / coarse to fine, same full-size steps", "> 1",
                         ratio, ratio is not None and ratio > 1, "lower cost = closer to the style and content")]
    common.write("style_large", rows, goals, roof, args.out, notes)
    return {"rows": rows, "goals": goals}


if __name__ == "__main__":
    main()
