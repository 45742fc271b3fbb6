"""Interrupt and resume: Ctrl-C (SIGINT) during a run stops it after the current step; the
caller saves the picture and the optimiser state, and ``--resume`` continues from them.

The state is one .npz file next to the output: the image being optimised (1, H, W, 3)
normalised, the optimiser's variables (Adam: iteration, learning rate, moments), the global
iteration reached, the scale and the run's settings (JSON)."""
from __future__ import annotations

import contextlib
import json
import signal
import threading
from pathlib import Path

import numpy as np

STATE_NAME = "nst_state.npz"
#: An output with one of these suffixes is a picture file; any other is a folder (``run.v2`` too).
PICTURE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class Interrupted(KeyboardInterrupt):
    """A run stopped by SIGINT: ``iteration`` (steps done, global over scales), ``scale`` (its
    index), ``image`` (1, H, W, 3) normalised, ``optimizer_state`` (list of arrays or None).
    A KeyboardInterrupt, so callers that do not know it stop as on Ctrl-C."""

    def __init__(self, iteration, image, optimizer_state=None, scale=0):
        super().__init__(f"interrupted at iteration {iteration}")
        self.iteration, self.image, self.optimizer_state, self.scale = iteration, image, optimizer_state, scale


class NoSavedState(ValueError):
    """--resume where no state was saved."""


def state_path(output) -> Path:
    """Where the state of a run writing to ``output`` lives: OUT/nst_state.npz for a folder,
    OUT.nst_state.npz beside an image file."""
    output = Path(output)
    if output.suffix.lower() not in PICTURE_SUFFIXES:
        return output / STATE_NAME
    return output.with_name(output.name + "." + STATE_NAME)


@contextlib.contextmanager
def sigint_flag():
    """While inside, SIGINT sets the yielded threading.Event instead of raising (a second
    SIGINT raises KeyboardInterrupt at once). Outside the main thread nothing is installed."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def on_sigint(signum, frame):
        if flag.is_set():
            raise KeyboardInterrupt
        flag.set()
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def optimizer_state(optimizer) -> list | None:
    """A Keras optimizer's variables as arrays (None for None)."""
    return None if optimizer is None else [np.asarray(v.numpy()) for v in optimizer.variables]


def restore_optimizer(optimizer, variable, state) -> None:
    """Build ``optimizer`` for ``variable`` and load ``state`` (from :func:`optimizer_state`)."""
    optimizer.build([variable])
    if len(optimizer.variables) != len(state):
        raise ValueError(f"saved optimiser state has {len(state)} variables, this optimiser "
                         f"{len(optimizer.variables)}; resume with the same --optimizer")
    for var, value in zip(optimizer.variables, state):
        if tuple(var.shape) != np.shape(value):
            raise ValueError(f"saved optimiser state has shape {np.shape(value)} for {var.path}, "
                             f"expected {tuple(var.shape)}; resume with the same options")
        var.assign(value)


def save(path, stop: Interrupted, settings: dict | None = None, run: dict | None = None) -> Path:
    """Write the state of an interrupted run to ``path`` (written whole, then renamed); ``run``: what
    the run was (JSON-able: its pictures' digests, its settings), which a resumed one must match."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"optimizer_{i}": v for i, v in enumerate(stop.optimizer_state or [])}
    meta = {"iteration": stop.iteration, "scale": stop.scale, "settings": settings or {}, "run": run or {}}
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, image=np.asarray(stop.image, dtype=np.float32), meta=json.dumps(meta), **arrays)
    tmp.replace(path)
    return path


def load(path) -> dict:
    """The saved state: ``iteration``, ``scale``, ``settings``, ``image``, ``optimizer_state``
    (list or None). Raises NoSavedState when there is none or it is unreadable."""
    path = Path(path)
    if not path.is_file():
        raise NoSavedState(f"no saved state in {path.parent} ({path.name} not found): --resume continues "
                           "a run that was interrupted with Ctrl-C; start without --resume")
    try:
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            n = sum(1 for k in data.files if k.startswith("optimizer_"))
            opt = [data[f"optimizer_{i}"] for i in range(n)] or None
            return {**meta, "image": data["image"], "optimizer_state": opt}
    except (OSError, ValueError, KeyError) as err:
        raise NoSavedState(f"{path}: not a readable saved state ({err}); start without --resume") from None


def run_differences(saved: dict, current: dict) -> list[str]:
    """'name (saved X, now Y)' for each entry of ``current`` that the saved run had otherwise (states
    written before runs were recorded have none: nothing to compare)."""
    return [f"{name} (saved {saved[name]}, now {value})" for name, value in current.items()
            if name in saved and json.loads(json.dumps(saved[name])) != json.loads(json.dumps(value))]
