"""The notebook runner: one notebook in a fresh kernel, then the hidden tests in that kernel.

Self-contained (standard library, nbformat, nbclient, jupyter_client only): the grader copies this
file into each sandbox and runs it there as a script, where the project's package is not importable::

    python runner.py SOURCE.ipynb TARGET.ipynb --timeout S --workdir DIR
        [--harness IN_DIR --out OUT_DIR --exercises a,b]  [--max-output BYTES] [--uid UID] [--nproc N]

TARGET's metadata ``grading`` records ``cells`` (index -> status ok/error/timeout and seconds;
``skipped`` for cells tagged :data:`RUNNER_SKIP_TAG`), ``died`` (the cell the kernel died in),
``finished`` and ``truncated`` (outputs dropped past ``--max-output`` bytes). With ``--harness``,
one hidden-test cell per exercise runs after the notebook (``IN_DIR/harness.py``, which writes
values into OUT_DIR); its outputs are not kept and ``OUT_DIR/harness.json`` says how each ended.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

RUNNER_SKIP_TAG = "happyhouse-grading-skip"
TIMEOUT_NAME = "CellTimeout"
MAX_OUTPUT = 8 * 2**20  # bytes of outputs kept per notebook


def harness_source(harness_dir: str, out_dir: str, exercise: str) -> str:
    """The cell that runs ``exercise``'s hidden tests in the kernel (see harness.py); it reaches the
    builtins through an import, so a notebook's own ``open`` or ``exec`` does not get in the way."""
    path = json.dumps(str(Path(harness_dir, "harness.py")))
    return ("import builtins as _grading_builtins\nfrom IPython import get_ipython as _grading_ipython\n"
            f"_grading_builtins.exec(_grading_builtins.compile(_grading_builtins.open({path}).read(), 'grading-harness', "
            f"'exec'), {{'__name__': 'grading_harness', 'USER_NS': _grading_ipython().user_ns, "
            f"'IN': {json.dumps(harness_dir)}, 'OUT': {json.dumps(out_dir)}, 'EXERCISE': {json.dumps(exercise)}}})\n"
            "del _grading_builtins, _grading_ipython")


def run_notebook(source: Path, target: Path, cell_timeout: float, workdir: Path, kernel: str = "python3",
                 harness: tuple[str, str, list[str]] | None = None, max_output: int = MAX_OUTPUT) -> None:
    """Run ``source`` in a fresh kernel, saving it to ``target`` after every cell; then the hidden tests.
    ``harness``: (IN_DIR, OUT_DIR, [exercise]) or None."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    from nbclient.exceptions import DeadKernelError

    record = Record(nbformat.read(source, as_version=4), target, harness)
    sockets = tempfile.TemporaryDirectory(prefix="grading-kernel-")
    client = _client(record, cell_timeout, kernel, workdir, Path(sockets.name, "kernel"), max_output)
    record.save()
    try:
        # the kernel's own stdout/stderr (not the cells' outputs, which come as messages) go nowhere
        client.execute(env=dict(os.environ), stdout=_devnull(), stderr=_devnull())
        record.state["finished"] = True
    except NoSuchKernel:
        available = ", ".join(sorted(KernelSpecManager().find_kernel_specs())) or "none"
        raise SystemExit(f"error: no Jupyter kernel named {kernel!r} (available: {available}); install one "
                         "with `python -m ipykernel install --sys-prefix`, or pass --kernel NAME.") from None
    except DeadKernelError:
        record.kernel_died()
    finally:
        record.save()
        sockets.cleanup()


def replace_file(path: Path, text: str) -> None:
    """Write ``text`` to a new file beside ``path``, then rename it over ``path``: what the submission may
    have left there (a named pipe, a link) is replaced, never opened."""
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(partial, path)


class Record:
    """What a run leaves: each cell's status and seconds in the notebook's metadata ``grading``
    (``state``), how each hidden test ended in OUT_DIR/harness.json (``hidden``); both saved after
    every cell. The hidden tests run as cells appended after the notebook's ``count`` own ones,
    which alone are saved."""

    def __init__(self, nb, target: Path, harness: tuple[str, str, list[str]] | None):
        self.nb, self.target, self.harness = nb, target, harness
        self.count = len(nb.cells)
        nb.metadata["grading"] = {"cells": {}, "finished": False}
        self.state = nb.metadata["grading"]  # the node nbformat made of the dict, not the dict
        self.hidden, self.started = {}, {}
        for index, cell in enumerate(nb.cells):
            if RUNNER_SKIP_TAG in cell.get("metadata", {}).get("tags", []):
                self.state["cells"][str(index)] = {"status": "skipped", "seconds": 0.0}
        for exercise in harness[2] if harness else []:
            nb.cells.append(nbformat.v4.new_code_cell(harness_source(harness[0], harness[1], exercise)))

    def save(self) -> None:
        """Write the notebook's own cells to ``target`` (atomically) and the hidden tests' endings."""
        cells, self.nb.cells = self.nb.cells, self.nb.cells[:self.count]
        try:
            replace_file(self.target, nbformat.writes(self.nb))
        finally:
            self.nb.cells = cells
        if self.harness:
            replace_file(Path(self.harness[1], "harness.json"), json.dumps(self.hidden))

    def on_cell_start(self, cell, cell_index) -> None:
        self.started[cell_index] = time.monotonic()

    def on_cell_executed(self, cell, cell_index, execute_reply) -> None:
        content = execute_reply.get("content", {}) if execute_reply else {}
        status = content.get("status", "ok")
        if status == "error" and content.get("ename") == TIMEOUT_NAME:
            status = "timeout"
        seconds = time.monotonic() - self.started.get(cell_index, time.monotonic())
        ending = {"status": status, "seconds": round(seconds, 3)}
        if cell_index >= self.count:
            error = _error_text(cell) if status == "error" else None
            self.hidden[self.harness[2][cell_index - self.count]] = {**ending, "error": error}
            cell.outputs = []
        else:
            self.state["cells"][str(cell_index)] = ending
        self.save()

    def kernel_died(self) -> None:
        """Record the notebook's cell (``died``) or the hidden test the kernel died in."""
        nb, count = self.nb, self.count
        running = [i for i in self.started if i < count and str(i) not in self.state["cells"]
                   and nb.cells[i].cell_type == "code" and nb.cells[i].source.strip()]
        self.state["died"] = max(running) if running else None
        if self.harness and any(i >= count for i in self.started):
            died_in = self.harness[2][max(self.started) - count]
            self.hidden.setdefault(died_in, {"status": "died", "error": "the kernel died during the hidden tests"})


def _client(record: Record, cell_timeout: float, kernel: str, workdir: Path, socket: Path, max_output: int):
    """The nbclient client that runs ``record``'s notebook: kernel sockets at ``socket`` (ipc), a
    cell past ``cell_timeout`` seconds interrupted and recorded as a timeout, outputs capped."""
    from traitlets.config import Config

    client = _client_class()(
        record.nb, timeout=cell_timeout, kernel_name=kernel, allow_errors=True,
        interrupt_on_timeout=True, iopub_timeout=10, skip_cells_with_tag=RUNNER_SKIP_TAG,
        shutdown_kernel="immediate",
        error_on_timeout={"ename": TIMEOUT_NAME, "evalue": f"ran longer than {cell_timeout:g} s", "traceback": []},
        on_cell_start=record.on_cell_start, on_cell_executed=record.on_cell_executed,
        resources={"metadata": {"path": str(workdir)}},
        config=Config({"KernelManager": {"transport": "ipc", "ip": str(socket)}}))
    client.max_output, client.state = max_output, record.state
    return client


def _devnull():
    return open(os.devnull, "wb")


def _error_text(cell) -> str:
    err = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), {})
    return f"{err.get('ename', 'Error')}: {err.get('evalue', '')}"[:500]


def _client_class():
    from nbclient import NotebookClient

    class Capped(NotebookClient):
        """nbclient that keeps at most ``max_output`` bytes of outputs per notebook (then one notice)."""

        max_output = MAX_OUTPUT
        state: dict = {}
        _kept = 0

        def output(self, outs, msg, display_id, cell_index):
            size = len(json.dumps(msg.get("content", {}), default=str))
            if self._kept + size > self.max_output:
                if not self.state.get("truncated"):
                    self.state["truncated"] = cell_index
                    outs.append(_notice(self.max_output))
                return None
            self._kept += size
            return super().output(outs, msg, display_id, cell_index)

    return Capped


def _notice(limit: int):
    return nbformat.v4.new_output("stream", name="stderr",
                                  text=f"[grading: output past {limit // 2**20} MB dropped: the notebook printed too much]\n")


def drop_privileges(uid: int) -> None:
    """Become ``uid`` (group ``uid``, no supplementary groups); every capability goes with root."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise SystemExit(f"error: could not become user {uid}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="runner.py", description="run a notebook, then its hidden tests")
    p.add_argument("source")
    p.add_argument("target")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--kernel", default="python3")
    p.add_argument("--workdir", default=None)
    p.add_argument("--harness", default=None, help="folder holding harness.py and the hidden tests' inputs")
    p.add_argument("--out", default=None, help="folder for the hidden tests' values")
    p.add_argument("--exercises", default="", help="comma-separated exercises to test")
    p.add_argument("--max-output", type=int, default=MAX_OUTPUT)
    p.add_argument("--uid", type=int, default=None, help="run as this user (the runner starts as root)")
    p.add_argument("--nproc", type=int, default=None,
                   help="at most N processes and threads (RLIMIT_NPROC; in its own user namespace: this sandbox's)")
    args = p.parse_args(argv)
    if args.uid is not None:
        drop_privileges(args.uid)
    if args.nproc is not None:
        import resource
        resource.setrlimit(resource.RLIMIT_NPROC, (args.nproc, args.nproc))
    source = Path(args.source)
    harness = None
    if args.harness and args.exercises:
        harness = (args.harness, args.out, [x for x in args.exercises.split(",") if x])
    run_notebook(source, Path(args.target), args.timeout,
                 Path(args.workdir) if args.workdir else source.resolve().parent, args.kernel, harness,
                 args.max_output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
