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
    """Run ``source`` in a fresh kernel, saving it to ``target`` after every cell; then the hidden tests."""
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError
    from traitlets.config import Config

    nb = nbformat.read(source, as_version=4)
    count = len(nb.cells)
    nb.metadata["grading"] = {"cells": {}, "finished": False}
    state = nb.metadata["grading"]
    for index, cell in enumerate(nb.cells):
        if RUNNER_SKIP_TAG in cell.get("metadata", {}).get("tags", []):
            state["cells"][str(index)] = {"status": "skipped", "seconds": 0.0}
    hidden = {}
    if harness:
        for exercise in harness[2]:
            nb.cells.append(nbformat.v4.new_code_cell(harness_source(harness[0], harness[1], exercise)))
    started = {}

    def save():
        cells, nb.cells = nb.cells, nb.cells[:count]
        try:
            partial = target.with_suffix(".partial")
            nbformat.write(nb, partial)
            os.replace(partial, target)
        finally:
            nb.cells = cells
        if harness:
            Path(harness[1], "harness.json").write_text(json.dumps(hidden))

    def on_start(cell, cell_index):
        started[cell_index] = time.monotonic()

    def on_executed(cell, cell_index, execute_reply):
        content = execute_reply.get("content", {}) if execute_reply else {}
        status = content.get("status", "ok")
        if status == "error" and content.get("ename") == TIMEOUT_NAME:
            status = "timeout"
        record = {"status": status, "seconds": round(time.monotonic() - started.get(cell_index, time.monotonic()), 3)}
        if cell_index >= count:
            hidden[harness[2][cell_index - count]] = {**record, "error": _error_text(cell) if status == "error" else None}
            cell.outputs = []
        else:
            state["cells"][str(cell_index)] = record
        save()

    sockets = tempfile.TemporaryDirectory(prefix="grading-kernel-")
    transport = {"KernelManager": {"transport": "ipc", "ip": str(Path(sockets.name, "kernel"))}}
    client = _client_class()(
        nb, timeout=cell_timeout, kernel_name=kernel, allow_errors=True,
        interrupt_on_timeout=True, iopub_timeout=10, skip_cells_with_tag=RUNNER_SKIP_TAG,
        shutdown_kernel="immediate",
        error_on_timeout={"ename": TIMEOUT_NAME, "evalue": f"ran longer than {cell_timeout:g} s", "traceback": []},
        on_cell_start=on_start, on_cell_executed=on_executed,
        resources={"metadata": {"path": str(workdir)}}, config=Config(transport))
    client.max_output, client.state = max_output, state
    save()
    try:
        # the kernel's own stdout/stderr (not the cells' outputs, which come as messages) go nowhere
        client.execute(env=dict(os.environ), stdout=_devnull(), stderr=_devnull())
        state["finished"] = True
    except NoSuchKernel:
        available = ", ".join(sorted(KernelSpecManager().find_kernel_specs())) or "none"
        raise SystemExit(f"error: no Jupyter kernel named {kernel!r} (available: {available}); install one "
                         "with `python -m ipykernel install --sys-prefix`, or pass --kernel NAME.") from None
    except DeadKernelError:
        running = [i for i in started if i < count and str(i) not in state["cells"]
                   and nb.cells[i].cell_type == "code" and nb.cells[i].source.strip()]
        state["died"] = max(running) if running else None
        if harness and any(i >= count for i in started):
            died_in = harness[2][max(started) - count]
            hidden.setdefault(died_in, {"status": "died", "error": "the kernel died during the hidden tests"})
    finally:
        save()
        sockets.cleanup()


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
    from nbformat.v4 import new_output

    return new_output("stream", name="stderr",
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
