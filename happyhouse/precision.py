"""The arithmetic TensorFlow graphs run in: float32, or bfloat16 on CPUs that have it, and
"auto", which picks between them for this CPU (:func:`resolve_precision`).

One switch serves the face embedders (:mod:`fr_utils`), the style-transfer step
(:mod:`nst_utils`) and the benchmarks.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys

from happyhouse import runtime

PRECISIONS = ("float32", "bfloat16")
#: What callers may ask for: "auto" is resolved by :func:`resolve_precision`.
CHOICES = ("auto",) + PRECISIONS
#: The work "auto" is resolved for: the style-transfer step, the embedder on a batch, on one face.
USES = ("style", "embed_batch", "embed_single")
#: Where bfloat16 was measured faster AND as good as float32 (bench/precision.py,
#: bench/precision_quality.py, docs/benchmarks.md), per CPU kind and use; the rest runs float32.
#: Style transfer: 2.5x on AVX512-BF16 (measured), 4.4x on AMX (issue 24's measurement), the same picture. Embeddings: faster, but bf16
#: moved a course probe across the door's threshold (1 of 57 answers changed): float32.
BFLOAT16_WINS = {
    "amx": {"style"},
    "avx512_bf16": {"style"},
}
#: Why bfloat16 lost where it did (the measurement, for the one line that says so).
LOSSES = {"embed_single": "to change the door's calibrated decisions (and slower at batch 1 on AMX)",
          "embed_batch": "to change the door's calibrated decisions (1 of 57 course answers)"}

#: oneDNN ISA limits (its ONEDNN_MAX_CPU_ISA variable) that leave it without bfloat16 kernels.
ISAS_WITHOUT_BFLOAT16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI")

logger = logging.getLogger(__name__)
said: set = set()


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS` and this process can compute in it, else
    a ValueError saying which are, or why bfloat16 cannot run here (:func:`check_bfloat16_runs`)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "bfloat16":
        check_bfloat16_runs()
    return precision


def check_choice(precision: str) -> str:
    """``precision`` if it is one of :data:`CHOICES` ("auto" or a precision this process can
    compute in), else a ValueError."""
    if precision not in CHOICES:
        raise ValueError(f"precision must be one of {CHOICES}, got {precision!r}")
    return precision if precision == "auto" else check_precision(precision)


def bfloat16_kind(flags=None) -> str | None:
    """"amx", "avx512_bf16" or None: how this CPU computes in bfloat16, if it does."""
    flags = runtime.cpu_flags() if flags is None else flags
    if "amx_bf16" in flags:
        return "amx"
    return "avx512_bf16" if "avx512_bf16" in flags else None


def bfloat16_missing() -> str | None:
    """Why this process has no bfloat16 kernels, or None where it has them: the CPU lacks
    AMX and AVX512-BF16, or ONEDNN_MAX_CPU_ISA holds oneDNN to an ISA without them."""
    kind = bfloat16_kind()
    if kind is None:
        return "the CPU has neither AMX nor AVX512-BF16"
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if isa in ISAS_WITHOUT_BFLOAT16:
        return f"the CPU has {kind} but oneDNN is held to {isa} (ONEDNN_MAX_CPU_ISA), which has no bfloat16 kernels"
    return None


def cpu_has_bfloat16() -> bool:
    """Whether this process computes in bfloat16 (:func:`bfloat16_missing` says why not)."""
    return bfloat16_missing() is None


def check_bfloat16_runs() -> None:
    """A ValueError saying why, where "bfloat16" was asked for and this process has no
    bfloat16 kernels (oneDNN would abort the process, or TensorFlow run float32 unasked)."""
    why = bfloat16_missing()
    if why is not None:
        raise ValueError(f"precision 'bfloat16' was asked for, but {why}: use precision 'auto' "
                         "(float32 here) or 'float32'")


def onednn_enabled() -> bool:
    """Whether TensorFlow runs its oneDNN kernels in this process (imports TensorFlow): its
    own answer, as it decided from TF_ENABLE_ONEDNN_OPTS and the CPU at import."""
    runtime.import_tensorflow()
    try:
        from tensorflow.python.util import _pywrap_util_port
        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").lower() in ("1", "true")


def resolve_precision(precision: str = "auto", use: str = "style") -> tuple[str, str]:
    """(precision, why) for ``precision`` in :data:`CHOICES` and ``use`` in :data:`USES`:
    "float32"/"bfloat16" as asked (bfloat16 only where this process has bfloat16 kernels: else a
    ValueError saying why); "auto": bfloat16 where the CPU has AMX or AVX512-BF16,
    TensorFlow's oneDNN is on and bfloat16 was measured faster and as good for ``use``
    (:data:`BFLOAT16_WINS`), else float32."""
    if check_choice(precision) != "auto":
        return precision, "asked for"
    if use not in USES:
        raise ValueError(f"use must be one of {USES}, got {use!r}")
    missing = bfloat16_missing()
    if missing is not None:
        return "float32", missing
    kind = bfloat16_kind()
    if not onednn_enabled():
        return "float32", f"the CPU has {kind} but TensorFlow's oneDNN is off (TF_ENABLE_ONEDNN_OPTS=0)"
    task = use.replace("_", " ")
    if use not in BFLOAT16_WINS.get(kind, set()):
        return "float32", f"the CPU has {kind}, but bfloat16 was measured {LOSSES.get(use, 'no faster')} " \
                          f"for {task} (docs/benchmarks.md)"
    return "bfloat16", f"the CPU has {kind} and oneDNN is on; bfloat16 was measured faster and as good for {task}"


def choose_precision(precision: str = "auto", use: str = "style") -> str:
    """:func:`resolve_precision`'s precision; for "auto" it says once per process and use, in
    one log line (logger ``happyhouse.precision``, INFO), which precision and why."""
    chosen, why = resolve_precision(precision, use)
    if precision == "auto":
        say_once(use, chosen, why)
    return chosen


def say_once(use: str, chosen: str, why: str) -> None:
    """Log "Precision (auto) for <use>: <chosen> (<why>)." at INFO, the first time per ``use``."""
    if use not in said:
        said.add(use)
        logger.info("Precision (auto) for %s: %s (%s).", use.replace("_", " "), chosen, why)


class StderrHandler(logging.StreamHandler):
    """A logging handler writing to whatever ``sys.stderr`` is when a record comes (tests and
    notebooks replace it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def say_choices_on_stderr() -> None:
    """Command lines: print :func:`choose_precision`'s line on stderr (notebooks leave the
    logger alone, so their recorded outputs do not change)."""
    if not any(isinstance(h, StderrHandler) for h in logger.handlers):
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


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
