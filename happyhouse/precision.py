"""The arithmetic TensorFlow graphs run in: float32, or bfloat16 on CPUs that have it.

One switch serves the face embedders (:mod:`fr_utils`), the style-transfer step
(:mod:`nst_utils`) and the benchmarks.
"""
from __future__ import annotations

import contextlib

PRECISIONS = ("float32", "bfloat16")


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a ValueError saying which are."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def cpu_has_bfloat16() -> bool:
    """Whether this CPU computes in bfloat16 (AVX512-BF16 or AMX flags in /proc/cpuinfo). Where it
    does not, oneDNN's rewrite leaves graphs in float32 and "bfloat16" changes nothing."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@contextlib.contextmanager
def compute_precision(precision: str = "float32"):
    """TensorFlow graphs called inside run their convolutions and matmuls in ``precision``.

    "bfloat16" turns on oneDNN's automatic bfloat16 rewrite (grappler's
    ``auto_mixed_precision_onednn_bfloat16``; fast on CPUs with AMX or AVX512-BF16, such as
    Intel Xeon 4th gen and later). TensorFlow picks a function's optimised graph by the
    options in force when it is called, so each call goes inside this block. The option is
    process-wide: do not switch it from several threads at once.
    """
    if check_precision(precision) == "float32":
        yield
        return
    import tensorflow as tf

    key = "auto_mixed_precision_onednn_bfloat16"
    old = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({**old, key: True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({**old, key: old.get(key, False)})
