"""TensorFlow's start-up: imported once, quietly, with the project's settings.

TensorFlow writes its start-up log lines (oneDNN, CPU features, absl) from C++ straight to file
descriptor 2, whatever ``TF_CPP_MIN_LOG_LEVEL`` says for some of them; in a notebook they
land under the first cell. :func:`import_tensorflow` sets the environment before the first
import and keeps descriptor 2 closed while TensorFlow loads; Python errors still surface.
"""
from __future__ import annotations

import contextlib
import os
import sys

#: Environment TensorFlow reads once, at its import (a value set by the user wins).
TF_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "2"}


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
    """Put :data:`TF_ENVIRONMENT` into ``os.environ`` where the user has not set it."""
    for name, value in TF_ENVIRONMENT.items():
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
