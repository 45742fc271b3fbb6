"""Running notebooks: a fresh kernel per notebook, a timeout per cell and per notebook, progress saved
after every cell, and the whole process tree killed when a notebook runs too long."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from .mode import RUNNER_SKIP_TAG
from .notebook import GradingError, Options, read_notebook
from .workers import MB, tree_rss

#: The project checkout (or, when installed, the folder holding the package): kernels can import from it.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
_TIMEOUT_NAME = "CellTimeout"


#: Variables that size TensorFlow's (and oneDNN/OpenMP's) thread pools: see :func:`grading_env`.
THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")


def grading_env(threads: int | None = None) -> dict:
    """The environment a submission's kernel runs in: this project importable, quiet TF, inline figures.

    ``threads``: CPU threads per notebook (several notebooks at once: cores // notebooks), set for
    TensorFlow's intra- and inter-op pools and OpenMP so that parallel notebooks do not oversubscribe the
    cores; None leaves the defaults (one notebook alone uses every core).
    """
    env = dict(os.environ)
    if threads:
        env.update({name: str(threads) for name in THREAD_VARIABLES})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return env


def execute_notebook(source: Path, target: Path, cell_timeout: float, workdir: Path,
                     kernel: str = "python3") -> None:
    """Run ``source`` in a fresh kernel and save it to ``target`` after every cell.

    ``target``'s metadata ``grading`` records ``cells`` (index -> status ok/error/timeout and
    seconds; ``skipped`` for cells tagged :data:`RUNNER_SKIP_TAG`, which do not run), ``died``
    (the cell the kernel died in) and ``finished``. A cell running past ``cell_timeout`` seconds
    is interrupted and the next cells still run.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError
    from traitlets.config import Config

    nb = read_notebook(source)
    nb.metadata["grading"] = {"cells": {}, "finished": False}
    state = nb.metadata["grading"]  # nbformat copies dicts on assignment
    for index, cell in enumerate(nb.cells):
        if RUNNER_SKIP_TAG in cell.get("metadata", {}).get("tags", []):
            state["cells"][str(index)] = {"status": "skipped", "seconds": 0.0}
    started = {}

    def save():
        partial = target.with_suffix(".partial")
        nbformat.write(nb, partial)
        os.replace(partial, target)

    def on_start(cell, cell_index):
        started[cell_index] = time.monotonic()

    def on_executed(cell, cell_index, execute_reply):
        content = execute_reply.get("content", {}) if execute_reply else {}
        status = content.get("status", "ok")
        if status == "error" and content.get("ename") == _TIMEOUT_NAME:
            status = "timeout"
        state["cells"][str(cell_index)] = {
            "status": status, "seconds": round(time.monotonic() - started.get(cell_index, time.monotonic()), 3)}
        save()

    sockets = tempfile.TemporaryDirectory(prefix="grading-kernel-")
    # Unix sockets in a private folder: kernels started at once never race for the same TCP port.
    transport = {"KernelManager": {"transport": "ipc", "ip": str(Path(sockets.name, "kernel"))}}
    client = NotebookClient(
        nb, timeout=cell_timeout, kernel_name=kernel, allow_errors=True,
        interrupt_on_timeout=True, iopub_timeout=10, skip_cells_with_tag=RUNNER_SKIP_TAG,
        # Every output has arrived when the last cell is done: kill the kernel rather than wait ~2 s for a
        # graceful exit (TensorFlow's teardown) that grading has no use for.
        shutdown_kernel="immediate",
        error_on_timeout={"ename": _TIMEOUT_NAME, "evalue": f"ran longer than {cell_timeout:g} s",
                          "traceback": []},
        on_cell_start=on_start, on_cell_executed=on_executed,
        resources={"metadata": {"path": str(workdir)}},
        config=Config(transport) if os.name == "posix" else Config())
    save()
    try:
        client.execute(env=grading_env())  # passed on to the kernel's launch
        state["finished"] = True
    except NoSuchKernel:
        available = ", ".join(sorted(KernelSpecManager().find_kernel_specs())) or "none"
        raise GradingError(f"no Jupyter kernel named {kernel!r} (available: {available}); install one "
                           "with `python -m ipykernel install --sys-prefix`, or pass --kernel NAME.") from None
    except DeadKernelError:
        running = [i for i in started if str(i) not in state["cells"]
                   and nb.cells[i].cell_type == "code" and nb.cells[i].source.strip()]
        state["died"] = max(running) if running else None
    finally:
        save()
        sockets.cleanup()


def _kill_tree(proc: subprocess.Popen) -> None:
    """Kill ``proc`` and every process it started (the kernel runs in its own session)."""
    import psutil

    try:
        parent = psutil.Process(proc.pid)
        family = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    for p in family:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait()


def run_submission(nb, options: Options, workdir: Path,
                   threads: int | None = None) -> tuple[nbformat.NotebookNode, str | None]:
    """Execute notebook ``nb`` in its own process; returns (executed notebook, problem or None).

    ``threads``: CPU threads for its kernel (see :func:`grading_env`), None for TensorFlow's default.

    The executed notebook's metadata ``grading.peak_memory_mb`` is the peak resident memory of
    the process and its kernel (sampled every 0.2 s). The problem is set when the notebook ran
    past ``options.notebook_timeout`` (its process and kernel are killed); the notebook then
    holds what ran. Raises GradingError when the notebook
    could not be run at all (e.g. no such kernel).
    """
    with tempfile.TemporaryDirectory(prefix="grading-") as tmp:
        source, target = Path(tmp, "submission.ipynb"), Path(tmp, "executed.ipynb")
        nbformat.write(nb, source)
        if not workdir.is_dir():  # e.g. a Dask worker without the project at the same path
            workdir = Path(tmp)
        command = [sys.executable, "-m", "happyhouse.grading", "execute", str(source), "-o", str(target),
                   "--timeout", str(options.cell_timeout), "--kernel", options.kernel,
                   "--workdir", str(workdir)]
        env = {**grading_env(threads), "TMPDIR": tmp}  # its temporary files (kernel sockets) go when we clean up
        log = Path(tmp, "runner.log")
        with open(log, "w") as stderr:  # a file, not a pipe: we poll the process to sample its memory
            proc = subprocess.Popen(command, env=env, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
        problem, stopped, peak = None, False, 0
        deadline = time.monotonic() + options.notebook_timeout
        while True:
            peak = max(peak, tree_rss(proc.pid))
            try:
                proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    _kill_tree(proc)
                    problem = f"the notebook ran longer than {options.notebook_timeout:g} s and was stopped"
                    stopped = True
                    break
        if not stopped and proc.returncode != 0:  # student code cannot do this (it runs in the kernel): our failure
            raise GradingError("the notebook could not be run: "
                               + _last_line(log.read_text(errors="replace")).removeprefix("error: "))
        executed = nbformat.read(target, as_version=4) if target.exists() else nb
    state = executed.metadata.setdefault("grading", {"cells": {}, "finished": False})
    state["peak_memory_mb"] = round(peak / MB, 1)
    if problem:
        state["problem"], state["stopped"] = problem, stopped
    return executed, problem


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"
