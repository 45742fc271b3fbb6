"""TensorFlow's start-up: imported once, quietly, with the project's settings (log level, and
oneDNN on the CPUs where TensorFlow leaves it off and it was measured faster: :func:`tf_environment`).

TensorFlow writes its start-up log lines (oneDNN, CPU features, absl) from C++ straight to file
descriptor 2, whatever ``TF_CPP_MIN_LOG_LEVEL`` says for some of them; in a notebook they
land under the first cell. :func:`import_tensorflow` sets the environment before the first
import and keeps descriptor 2 closed while TensorFlow loads; Python errors still surface.
"""
from __future__ import annotations

import contextlib
import functools
import os
import sys

#: Environment TensorFlow reads once, at its import (a value set by the user wins).
TF_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "2"}
#: x86 CPU kinds (:func:`cpu_kind`) where TensorFlow leaves oneDNN off and this project measured it
#: faster (bench/precision.py, docs/benchmarks.md): TF_ENABLE_ONEDNN_OPTS=1 there. TensorFlow itself
#: turns it on where the CPU has AVX512-VNNI, AVX512-BF16, AVX-VNNI or AMX.
#: Measured on an AVX-512 CPU with oneDNN held to the ISA (ONEDNN_MAX_CPU_ISA), two quiet runs of
#: bench.precision, 2026-12-05: AVX2: the VGG-16 style step 1.13-1.16x, the embedder 1.09-1.17x;
#: AVX-512 without VNNI/BF16: the style step 1.42-1.48x, the embedder 1.12-1.22x (an earlier run,
#: 2026-12-04, had the embedder there at 0.7-0.8x; two later quiet runs did not repeat it).
ONEDNN_FASTER = frozenset({"avx2", "avx512"})


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset:
    """The CPU's feature flags from /proc/cpuinfo, read once (empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            return frozenset(next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), []))
    except OSError:
        return frozenset()


def cpu_kind(flags=None) -> str:
    """"amx", "avx512_bf16", "avx512_vnni", "avx512", "avx2" or "other": the CPU's newest matrix ISA."""
    flags = cpu_flags() if flags is None else flags
    for kind, flag in (("amx", "amx_bf16"), ("avx512_bf16", "avx512_bf16"), ("avx512_vnni", "avx512_vnni"),
                       ("avx512", "avx512f"), ("avx2", "avx2")):
        if flag in flags:
            return kind
    return "other"


def tf_environment(flags=None) -> dict:
    """:data:`TF_ENVIRONMENT`, with TF_ENABLE_ONEDNN_OPTS=1 on the CPU kinds of :data:`ONEDNN_FASTER`."""
    env = dict(TF_ENVIRONMENT)
    if cpu_kind(flags) in ONEDNN_FASTER:
        env["TF_ENABLE_ONEDNN_OPTS"] = "1"
    return env


@contextlib.contextmanager
def quiet_stderr():
    """Silence file descriptor 2 (C++ logging) for the block; Python exceptions still propagate."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def configure_environment() -> None:
    """Put :func:`tf_environment` into ``os.environ`` where the user has not set it."""
    for name, value in tf_environment().items():
        os.environ.setdefault(name, value)


def import_tensorflow():
    """The ``tensorflow`` module, imported with :func:`configure_environment` and no log lines."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    configure_environment()
    with quiet_stderr():
        import tensorflow
        import keras  # noqa: F401  (it logs too when first imported)
    return tensorflow


@functools.lru_cache(maxsize=1)
def _glibc():
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def trim_heap() -> bool:
    """Hand the C heap's free memory back to the system (glibc's ``malloc_trim(0)``; False where
    there is none). TensorFlow's tensors of changing sizes leave glibc's heap holding freed pages,
    so a long watch run's resident memory crept up (bench/detect_memory.py)."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
