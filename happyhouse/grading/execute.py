"""Running notebooks: a fresh kernel per notebook, a timeout per cell and per notebook, progress saved
after every cell, and the whole process tree killed when a notebook runs too long."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import nbformat

from happyhouse import runtime

from .runner import RUNNER_SKIP_TAG, run_notebook
from .notebook import PROJECT_ROOT, GradingError, Options, read_notebook
from .untrusted import TooLarge, read_capped
from .workers import MB, tree_rss



#: Variables that size TensorFlow's (and oneDNN/OpenMP's) thread pools: see :func:`grading_env`.
THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")
#: Set to stop every running notebook at once (Ctrl-C on a class): each is killed with its processes.
STOP = threading.Event()


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
    for name, value in runtime.tf_environment().items():  # log level, oneDNN: a value set by the user wins
        env.setdefault(name, value)
    env.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return env


def execute_notebook(source: Path, target: Path, cell_timeout: float, workdir: Path,
                     kernel: str = "python3") -> None:
    """Run ``source`` in a fresh kernel and save it to ``target`` after every cell (see :mod:`.runner`).

    ``target``'s metadata ``grading`` records ``cells`` (index -> status ok/error/timeout and
    seconds; ``skipped`` for cells tagged :data:`RUNNER_SKIP_TAG`, which do not run), ``died``
    (the cell the kernel died in) and ``finished``. A cell running past ``cell_timeout`` seconds
    is interrupted and the next cells still run.
    """
    nb = read_notebook(source)  # a clear error for a file that is no notebook
    del nb
    Path(target).parent.mkdir(parents=True, exist_ok=True)  # (check_file allowed a folder still to make)
    env = grading_env()
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        run_notebook(Path(source), Path(target), cell_timeout, Path(workdir), kernel)
    except SystemExit as err:
        raise GradingError(str(err.code).removeprefix("error: ")) from None
    finally:
        os.environ.clear()
        os.environ.update(saved)


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
    try:
        os.killpg(proc.pid, 9)  # its session (without the sandbox, a process that left it escapes)
    except OSError:
        pass
    proc.wait()


def run_submission(nb, options: Options, workdir: Path, threads: int | None = None,
                   hidden: dict | None = None) -> tuple[nbformat.NotebookNode, str | None, dict]:
    """Execute notebook ``nb`` in its own process (in a sandbox unless ``options.sandbox`` is False).

    Returns (executed notebook, problem or None, hidden-test values). ``hidden``: ``{"drawn": ...,
    "reference": values or None}`` (see :mod:`.hidden`): its tests run in the kernel after the
    notebook; the values are ``{exercise: values or None, "$status": {exercise: how its cell ended}}``.
    ``threads``: CPU threads for its kernel (see :func:`grading_env`), None for TensorFlow's default.

    The executed notebook's metadata ``grading.peak_memory_mb`` is the peak resident memory of
    the process and its kernel (sampled every 0.2 s). The problem is set when the notebook ran
    past ``options.notebook_timeout`` (everything in it is killed); the notebook then holds what
    ran. Raises GradingError when the notebook could not be run at all (e.g. no such kernel, the
    runner killed from inside).
    """
    from . import sandbox
    from .hidden import read_values, write_inputs

    # a uid of its own only matters to a sandbox run as root (otherwise the grader's own uid, mapped, runs it)
    slot = sandbox.uid_slot() if options.sandbox and os.geteuid() == 0 else contextlib.nullcontext()
    with tempfile.TemporaryDirectory(prefix="grading-") as tmp, slot as uid:
        in_dir, out_dir = Path(tmp, "in"), Path(tmp, "out")
        in_dir.mkdir()
        out_dir.mkdir()
        nbformat.write(nb, in_dir / "submission.ipynb")
        (in_dir / "runner.py").write_bytes(Path(__file__).with_name("runner.py").read_bytes())
        exercises = list(hidden["drawn"]) if hidden else []
        if hidden:
            write_inputs(in_dir, hidden["drawn"], hidden.get("reference"))
        args = ["--timeout", str(options.cell_timeout), "--kernel", options.kernel,
                "--exercises", ",".join(exercises), "--max-output", str(int(options.max_output_mb * MB))]
        if options.sandbox:
            command, env, cwd, preexec, limits = _sandboxed(args, options, Path(tmp), threads, uid)
            guard = partial(sandbox.overrun, out_dir=out_dir, limits=limits)
        else:
            guard = None
            if not workdir.is_dir():  # e.g. a Dask worker without the project at the same path
                workdir = Path(tmp)
            command = [sys.executable, str(in_dir / "runner.py"), str(in_dir / "submission.ipynb"),
                       str(out_dir / "executed.ipynb"), "--workdir", str(workdir), "--harness", str(in_dir),
                       "--out", str(out_dir), *args]
            env, cwd, preexec = {**grading_env(threads), "TMPDIR": tmp}, PROJECT_ROOT, None
        log = Path(tmp, "runner.log")
        with open(log, "w") as stderr:  # a file, not a pipe: we poll the process to sample its memory
            proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=stderr,
                                    stdin=subprocess.DEVNULL, preexec_fn=preexec, start_new_session=True)
        problem, stopped, peak = _wait(proc, options.notebook_timeout, guard)
        executed = _read_executed(out_dir / "executed.ipynb") or nb
        if not stopped and proc.returncode != 0:  # the kernel's death is recorded by the runner: this is the runner's
            raise GradingError(_runner_failed(proc.returncode, _tail(log), options.sandbox))
        check_cells(executed, nb)
        values = {x: read_values(out_dir, x) for x in exercises}
        values["$status"] = _read_json(out_dir / "harness.json") or {}
        values["$problem"] = (stopped, problem) if problem else None
    state = executed.metadata.setdefault("grading", {"cells": {}, "finished": False})
    state["peak_memory_mb"] = round(peak / MB, 1)
    if problem:
        state["problem"], state["stopped"] = problem, stopped
    return executed, problem, values


def _sandboxed(args: list[str], options: Options, tmp: Path, threads: int | None, uid: int | None):
    """(command, environment, working folder, preexec, limits) running the runner in a sandbox (see sandbox.py)."""
    from . import sandbox
    from .workspace import default_workspace

    sandbox.check()
    workspace = Path(options.workspace) if options.workspace else default_workspace()
    argv = [sys.executable, f"{sandbox.IN}/runner.py", f"{sandbox.IN}/submission.ipynb", f"{sandbox.OUT}/executed.ipynb",
            "--workdir", sandbox.WORKSPACE, "--harness", sandbox.IN, "--out", sandbox.OUT, *args]
    sandbox.prepare(tmp / "out", tmp / "in", uid)
    limits = sandbox.Limits(memory=int(options.memory_mb * MB))
    command = sandbox.command(argv, workspace, tmp / "in", tmp / "out", sandbox.environment(threads), limits, uid)
    return command, {}, "/", partial(sandbox.apply_limits, limits), limits


def _wait(proc, timeout: float, guard=None) -> tuple[str | None, str | None, int]:
    """Wait for ``proc`` (sampling its tree's memory); kill everything past ``timeout`` seconds, or as
    soon as ``guard(pid, resident_bytes)`` says why (see sandbox.overrun), every 0.2 s. Returns (problem,
    the verdict it gives: "timeout" or "error", or None when the process ended by itself; peak bytes)."""
    peak, deadline = 0, time.monotonic() + timeout
    while True:
        resident = tree_rss(proc.pid)
        peak = max(peak, resident)
        try:
            proc.wait(timeout=0.2)
            return None, None, peak
        except subprocess.TimeoutExpired:
            if STOP.is_set():
                _kill_tree(proc)
                return "grading was interrupted", "timeout", peak
            if time.monotonic() > deadline:
                _kill_tree(proc)
                return f"the notebook ran longer than {timeout:g} s and was stopped", "timeout", peak
            why = guard(proc.pid, resident) if guard else None
            if why:
                _kill_tree(proc)
                return f"the notebook exceeded a limit of the sandbox: {why}", "error", peak


def check_cells(executed, submitted) -> None:
    """GradingError when the executed notebook's cells are not ``submitted``'s (same count, types and
    sources): it is written where the submission's own processes run, so a changed cell means the
    run was tampered with, and nothing in it can be trusted."""
    ran, given = ([(c.get("cell_type"), c.get("source")) for c in nb.cells] for nb in (executed, submitted))
    if ran != given:
        changed = next((i for i, (a, b) in enumerate(zip(ran, given)) if a != b), None)
        where = (f"cell {changed} differs" if changed is not None else
                 f"{len(ran)} cells where the submission has {len(given)}")
        raise GradingError(f"the executed notebook was changed during the run ({where} from the submission): "
                           "something the submission ran rewrote it, so it is not graded; look at the submission")


def _runner_failed(code: int, tail: str, sandboxed: bool) -> str:
    how = f"signal {-code}" if code < 0 else f"exit {code}"
    if tail.startswith("error: "):
        return "the notebook could not be run: " + tail.removeprefix("error: ")
    return (f"the notebook's runner ended early ({how}){': ' + tail if tail else ''}; the submission may have "
            "killed it or its kernel, or exhausted a limit" + (" of the sandbox" if sandboxed else ""))


def _read_executed(path: Path, limit: int = 64 * MB):
    """The executed notebook the runner wrote (see untrusted.read_capped), or None."""
    text = _read_text(path, limit)
    try:
        return nbformat.reads(text, as_version=4) if text is not None else None
    except Exception:
        return None


def _read_json(path: Path, limit: int = MB):
    text = _read_text(path, limit)
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _read_text(path: Path, limit: int) -> str | None:
    try:
        data = read_capped(path, limit)
    except TooLarge:
        return None
    return data.decode("utf-8", errors="replace") if data is not None else None


def _tail(log: Path) -> str:
    with open(log, "rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
        return _last_line(f.read().decode("utf-8", errors="replace"))


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""
