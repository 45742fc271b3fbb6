"""Grading: re-execute students' notebooks, compare their graded cells with a reference, diff notebooks.

Commands (``python -m grading COMMAND --help`` for every option)::

    grade SUBMISSION.ipynb --reference REF.ipynb     one notebook: a table, a JSON report, an exit code
    class FOLDER --reference REF.ipynb               every *.ipynb in FOLDER, in parallel or on a Dask
                                                     cluster (--scheduler ADDRESS): CSV of scores
    diff A.ipynb B.ipynb [--html OUT.html]           nbdime diff of two notebooks, for instructors
    execute NOTEBOOK.ipynb -o OUT.ipynb              run a notebook exactly as the grader does

A graded cell carries the cell tag ``exercise:<name>`` in the reference notebook; its recorded
outputs are what a submission must print. A submission's cells are matched by the same tag,
else by the reference cell's id (nbformat cell ids survive copies). Outputs are compared as
text in which every number is compared with a tolerance (``|got - expected| <= atol + rtol *
|expected|``; integers exactly) and everything else exactly, up to white space.

Each submission runs in its own process (``python -m grading execute``) which starts a fresh
``python3`` kernel through nbclient, in the reference notebook's folder, with ``PYTHONPATH`` set
to this project so ``import fr_utils`` and the data lookup (``COURSE_DATA``) work. A cell that
runs past ``cell_timeout`` is interrupted and the rest of the notebook still runs; a notebook
that runs past ``notebook_timeout`` is killed with its kernel. Exit codes: 0 every exercise
passed, 1 some exercise did not, 2 the input could not be graded (not a notebook, no reference
exercises, missing file).
"""
from __future__ import annotations

import argparse
import csv
import difflib
import html
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from types import SimpleNamespace

if __name__ == "__main__":
    # Every notebook runs in its own `python -m grading execute`: skip jsonschema's optional IRI
    # checker, which nbformat never uses and whose grammar (rfc3987_syntax) takes ~2 s to import.
    sys.modules.setdefault("rfc3987_syntax", None)

import nbformat
import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent
EXERCISE_TAG = "exercise:"
VERDICTS = ("pass", "fail", "error", "timeout", "missing", "not-run")
EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
_TIMEOUT_NAME = "CellTimeout"

#: A number in text: 3, -2.5, 1., .5, 6.02e23, 1E-05, nan, -inf; not digits inside words (float32, conv4_2).
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|(?i:nan|inf))(?!\w)")


class GradingError(Exception):
    """Something could not be graded at all (bad notebook, reference without exercises, ...)."""


class NotebookFileError(GradingError):
    """A file is missing, or is not a Jupyter notebook; the message names the file and why."""


@dataclass
class Options:
    """How submissions are run and compared (seconds, tolerances, kernel, working folder)."""

    cell_timeout: float = 600.0
    notebook_timeout: float = 3600.0
    rtol: float = 1e-4
    atol: float = 1e-6
    kernel: str = "python3"
    workdir: str | None = None  # None: the reference notebook's folder


# --------------------------------------------------------------------------- notebooks

def parse_notebook(data: str | bytes, name: str) -> nbformat.NotebookNode:
    """Parse and validate notebook ``data`` (JSON text or bytes); ``name`` is used in errors."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise NotebookFileError(
                f"{name}: not a notebook: the file is binary, not the JSON text Jupyter saves "
                "(.ipynb). Ask for the .ipynb file itself (File > Download in Jupyter).") from None
    if not data.strip():
        raise NotebookFileError(f"{name}: not a notebook: the file is empty. Ask for the saved .ipynb file.")
    try:
        json.loads(data)
    except json.JSONDecodeError as err:
        raise NotebookFileError(
            f"{name}: not a notebook: it is not valid JSON ({err.msg} at line {err.lineno}, "
            f"column {err.colno}). A .ipynb file is JSON saved by Jupyter; the file may be "
            "truncated or be another kind of file renamed.") from None
    try:
        nb = nbformat.reads(data, as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # nbformat raises several types for JSON that is no notebook
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise NotebookFileError(
            f"{name}: not a notebook: the JSON does not follow the Jupyter notebook format "
            f"version 4 ({first}). Open and save it in Jupyter, or ask for the original file.") from None
    return nb


def read_notebook(path: str | os.PathLike) -> nbformat.NotebookNode:
    """Read and validate the notebook at ``path``; raises NotebookFileError saying what is wrong."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "no such file"
        raise NotebookFileError(f"{path}: {what}; expected a Jupyter notebook (.ipynb) file.")
    return parse_notebook(path.read_bytes(), str(path))


def exercise_cells(nb) -> dict[str, list[int]]:
    """Exercise name -> indices of the cells tagged ``exercise:<name>``, in notebook order."""
    found: dict[str, list[int]] = {}
    for index, cell in enumerate(nb.cells):
        for tag in cell.get("metadata", {}).get("tags", []):
            if tag.startswith(EXERCISE_TAG) and tag[len(EXERCISE_TAG):]:
                found.setdefault(tag[len(EXERCISE_TAG):], []).append(index)
    return found


def output_text(cell) -> str:
    """The text a cell showed: stdout, text/plain results and ``Name: message`` for errors.

    Standard error (warnings, progress bars) and images are left out.
    """
    parts = []
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "stream" and out.get("name") == "stdout":
            parts.append(_joined(out.get("text", "")))
        elif kind in ("execute_result", "display_data") and "text/plain" in out.get("data", {}):
            parts.append(_joined(out["data"]["text/plain"]))
        elif kind == "error":
            parts.append(f"{out.get('ename', 'Error')}: {out.get('evalue', '')}")
    return "".join(p if p.endswith("\n") else p + "\n" for p in parts)


def _joined(text: str | list[str]) -> str:
    """Notebook text as one string (files on disk may store it as a list of lines)."""
    return text if isinstance(text, str) else "".join(text)


def reference_spec(reference, name: str, options: Options) -> dict:
    """What each exercise must print, from a reference notebook with recorded outputs.

    Returns ``{"reference": name, "exercises": {exercise: {"expected", "ids", "rtol", "atol"}}}``;
    a reference cell's metadata ``{"grading": {"rtol": .., "atol": ..}}`` overrides the tolerances.
    """
    cells = exercise_cells(reference)
    if not cells:
        raise GradingError(
            f"{name}: the reference has no graded cells. Tag each cell whose output is graded "
            f"with '{EXERCISE_TAG}<name>' (e.g. '{EXERCISE_TAG}triplet_loss') and save it with outputs.")
    exercises = {}
    for exercise, indices in cells.items():
        ref_cells = [reference.cells[i] for i in indices]
        expected = "".join(output_text(c) for c in ref_cells)
        if not expected:
            raise GradingError(
                f"{name}: the graded cells of exercise {exercise!r} (cells {indices}) have no "
                "recorded output. Run the reference notebook and save it, or pass --execute-reference.")
        errors = [o for c in ref_cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        if errors:
            raise GradingError(f"{name}: the reference's exercise {exercise!r} raised "
                               f"{errors[0].get('ename')}: {errors[0].get('evalue')}; fix the reference first.")
        tolerance = {}
        for c in ref_cells:
            tolerance.update(c.get("metadata", {}).get("grading", {}))
        exercises[exercise] = {
            "expected": expected,
            "ids": [c.get("id") for c in ref_cells if c.get("id")],
            "rtol": float(tolerance.get("rtol", options.rtol)),
            "atol": float(tolerance.get("atol", options.atol)),
        }
    return {"reference": name, "exercises": exercises}


# --------------------------------------------------------------------------- comparing text

def _skeleton(text: str) -> str:
    """Text with every number replaced by '#', white space collapsed, none around brackets/commas."""
    text = re.sub(r"\s+", " ", NUMBER.sub("#", text)).strip()
    return re.sub(r"\s*([\[\](){},])\s*", r"\1", text)


def compare_text(expected: str, got: str, rtol: float = 1e-4, atol: float = 1e-6) -> str | None:
    """None when ``got`` matches ``expected``, else the first difference in words.

    Numbers match within ``atol + rtol * |expected|`` (two integers must be equal); the text
    around them must be the same up to white space.
    """
    if _skeleton(expected) != _skeleton(got):
        exp_lines, got_lines = expected.splitlines(), got.splitlines()
        for k in range(max(len(exp_lines), len(got_lines))):
            e = exp_lines[k] if k < len(exp_lines) else ""
            g = got_lines[k] if k < len(got_lines) else ""
            if _skeleton(e) != _skeleton(g):
                return f"line {k + 1} differs: expected {_short(e)!r}, got {_short(g)!r}"
        return "the text differs"  # only line breaks moved
    for k, (e, g) in enumerate(zip(NUMBER.findall(expected), NUMBER.findall(got)), start=1):
        both_int = re.fullmatch(r"[-+]?\d+", e) and re.fullmatch(r"[-+]?\d+", g)
        same = int(e) == int(g) if both_int else bool(
            np.isclose(float(g), float(e), rtol=rtol, atol=atol, equal_nan=True))
        if not same:
            return f"number {k}: expected {e}, got {g} (rtol={rtol:g}, atol={atol:g})"
    return None


def _short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


# --------------------------------------------------------------------------- executing

def grading_env() -> dict:
    """The environment a submission's kernel runs in: this project importable, quiet TF, inline figures."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return env


def execute_notebook(source: Path, target: Path, cell_timeout: float, workdir: Path,
                     kernel: str = "python3") -> None:
    """Run ``source`` in a fresh kernel and save it to ``target`` after every cell.

    ``target``'s metadata ``grading`` records ``cells`` (index -> status ok/error/timeout and
    seconds), ``died`` (the cell the kernel died in) and ``finished``. A cell running past
    ``cell_timeout`` seconds is interrupted and the next cells still run.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError
    from traitlets.config import Config

    nb = read_notebook(source)
    nb.metadata["grading"] = {"cells": {}, "finished": False}
    state = nb.metadata["grading"]  # nbformat copies dicts on assignment
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
        interrupt_on_timeout=True, iopub_timeout=10,
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


def run_submission(nb, options: Options, workdir: Path) -> tuple[nbformat.NotebookNode, str | None]:
    """Execute notebook ``nb`` in its own process; returns (executed notebook, problem or None).

    The problem is set when the notebook ran past ``options.notebook_timeout`` (its process and
    kernel are killed); the notebook then holds what ran. Raises GradingError when the notebook
    could not be run at all (e.g. no such kernel).
    """
    with tempfile.TemporaryDirectory(prefix="grading-") as tmp:
        source, target = Path(tmp, "submission.ipynb"), Path(tmp, "executed.ipynb")
        nbformat.write(nb, source)
        if not workdir.is_dir():  # e.g. a Dask worker without the project at the same path
            workdir = Path(tmp)
        command = [sys.executable, "-m", "grading", "execute", str(source), "-o", str(target),
                   "--timeout", str(options.cell_timeout), "--kernel", options.kernel,
                   "--workdir", str(workdir)]
        env = {**grading_env(), "TMPDIR": tmp}  # its temporary files (kernel sockets) go when we clean up
        proc = subprocess.Popen(command, env=env, cwd=PROJECT_ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        problem, stopped = None, False
        try:
            _, stderr = proc.communicate(timeout=options.notebook_timeout)
            if proc.returncode != 0:  # student code cannot do this (it runs in the kernel): our failure
                raise GradingError("the notebook could not be run: " + _last_line(stderr).removeprefix("error: "))
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            problem = f"the notebook ran longer than {options.notebook_timeout:g} s and was stopped"
            stopped = True
        executed = nbformat.read(target, as_version=4) if target.exists() else nb
    state = executed.metadata.setdefault("grading", {"cells": {}, "finished": False})
    if problem:
        state["problem"], state["stopped"] = problem, stopped
    return executed, problem


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


# --------------------------------------------------------------------------- verdicts

def _match(spec_ids: list, exercise: str, submission) -> list[int]:
    """The submission's cells for ``exercise``: by tag, else by the reference cells' ids."""
    tagged = exercise_cells(submission).get(exercise)
    if tagged:
        return tagged
    by_id = {cell.get("id"): i for i, cell in enumerate(submission.cells) if cell.get("id")}
    return [by_id[i] for i in spec_ids if i in by_id]


def judge(executed, spec: dict) -> list[dict]:
    """One verdict per exercise of ``spec`` for an executed submission.

    Each is ``{"exercise", "verdict", "reason", "expected", "got", "cells"}``, verdict one of
    pass, fail, error (the cell raised or the kernel died), timeout, missing, not-run.
    """
    state = executed.metadata.get("grading", {})
    ran = state.get("cells", {})
    results = []
    for exercise, want in spec["exercises"].items():
        cells = _match(want["ids"], exercise, executed)
        got = "".join(output_text(executed.cells[i]) for i in cells)
        verdict, reason = _verdict(cells, executed, ran, state, want, got)
        results.append({"exercise": exercise, "verdict": verdict, "reason": reason,
                        "expected": want["expected"], "got": got, "cells": cells})
    return results


def _verdict(cells, executed, ran, state, want, got) -> tuple[str, str]:
    if not cells:
        return "missing", f"no cell tagged '{EXERCISE_TAG}...' for this exercise (nor a cell with the reference's id)"
    for i in cells:
        status = ran.get(str(i), {}).get("status")
        if status == "timeout":
            return "timeout", f"cell {i} ran longer than the cell timeout and was interrupted"
        if state.get("died") == i:
            return "error", f"the kernel died (crashed) while running cell {i}"
        if status is None and not state.get("finished"):  # (a finished notebook skipped only empty cells)
            if state.get("stopped") and _first_unrun(executed, ran) == i:
                return "timeout", f"cell {i}: {state['problem']}"
            return "not-run", f"cell {i} did not run ({state.get('problem') or 'an earlier cell stopped the notebook'})"
        if status == "error":
            err = next((o for o in executed.cells[i].outputs if o.get("output_type") == "error"), {})
            return "error", f"cell {i} raised {err.get('ename', 'an error')}: {_short(err.get('evalue', ''))}" + _earlier(executed, ran, i)
    difference = compare_text(want["expected"], got, want["rtol"], want["atol"])
    return ("pass", "") if difference is None else ("fail", difference)


def _first_unrun(executed, ran) -> int | None:
    for i, cell in enumerate(executed.cells):
        if cell.cell_type == "code" and cell.source.strip() and str(i) not in ran:
            return i
    return None


def _earlier(executed, ran, index) -> str:
    """' (earlier, cell k raised ...)' when an earlier cell went wrong, which often explains an error."""
    for i in range(index):
        status = ran.get(str(i), {}).get("status")
        if status in ("error", "timeout"):
            return f" (earlier, cell {i} {'timed out' if status == 'timeout' else 'raised an error'})"
    return ""


def grade_source(name: str, data: bytes | str, spec: dict, options: Options | dict,
                 workdir: str | os.PathLike | None = None) -> dict:
    """Grade one submission given as notebook text; never raises (problems become the report's error).

    Returns the report: ``submission``, ``reference``, ``status`` (graded / error), ``error``,
    ``passed``, ``total``, ``score``, ``exercises`` (see :func:`judge`), ``seconds``, ``options``
    and ``executed`` (the executed notebook as JSON text, or None).
    """
    options = Options(**options) if isinstance(options, dict) else options
    workdir = Path(workdir or options.workdir or PROJECT_ROOT)
    start = time.monotonic()
    report = {"submission": name, "reference": spec["reference"], "status": "graded", "error": None,
              "passed": 0, "total": len(spec["exercises"]), "score": 0.0, "exercises": [],
              "seconds": 0.0, "options": asdict(options), "executed": None}
    try:
        nb = parse_notebook(data, name)
        executed, _ = run_submission(nb, options, workdir)
        report["exercises"] = judge(executed, spec)
        report["executed"] = nbformat.writes(executed)
    except Exception as err:  # one bad submission must never stop a class
        report["status"] = "error"
        report["error"] = str(err) if isinstance(err, GradingError) else f"{type(err).__name__}: {err}"
    report["passed"] = sum(e["verdict"] == "pass" for e in report["exercises"])
    report["score"] = round(report["passed"] / report["total"], 4) if report["total"] else 0.0
    report["seconds"] = round(time.monotonic() - start, 2)
    return report


def load_reference(reference: str | os.PathLike, options: Options, execute: bool = False) -> dict:
    """The spec of a reference notebook (see :func:`reference_spec`), executing it first if asked."""
    nb = read_notebook(reference)
    if execute:
        nb, problem = run_submission(nb, options, Path(reference).resolve().parent)
        if problem:
            raise GradingError(f"{reference}: the reference could not be executed: {problem}")
    return reference_spec(nb, str(reference), options)


def grade(submission: str | os.PathLike, reference: str | os.PathLike, options: Options | None = None,
          execute_reference: bool = False) -> dict:
    """Grade one submission file against a reference notebook; returns the report (see grade_source).

    Raises GradingError when the reference cannot be used; a bad submission gives status error.
    """
    options = options or Options()
    spec = load_reference(reference, options, execute_reference)
    path = Path(submission)
    if not path.is_file():
        raise NotebookFileError(f"{path}: {'is a folder' if path.is_dir() else 'no such file'}; "
                                "expected a Jupyter notebook (.ipynb) file.")
    workdir = options.workdir or Path(reference).resolve().parent
    return grade_source(str(path), path.read_bytes(), spec, options, workdir)


def exit_code(reports: list[dict]) -> int:
    """0 when every report was graded and every exercise passed, 2 when one is an error, else 1."""
    if any(r["status"] == "error" for r in reports):
        return EXIT_ERROR
    return EXIT_PASS if all(r["passed"] == r["total"] for r in reports) else EXIT_FAIL


def format_table(report: dict) -> str:
    """A readable per-exercise table of one report."""
    head = f"{report['submission']}  (reference {report['reference']})"
    if report["status"] == "error":
        return f"{head}\nERROR: {report['error']}\n"
    rows = [("exercise", "verdict", "expected", "got", "why")]
    for e in report["exercises"]:
        rows.append((e["exercise"], e["verdict"].upper(), _short(e["expected"], 28),
                     _short(e["got"], 28), e["reason"]))
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in rows]
    lines.insert(1, "-" * min(120, sum(widths) + 10))
    tail = f"{report['passed']}/{report['total']} exercises passed ({report['seconds']:.1f} s)"
    return "\n".join([head, *[line.rstrip() for line in lines], tail]) + "\n"


# --------------------------------------------------------------------------- a class

def grade_class(folder: str | os.PathLike, reference: str | os.PathLike, options: Options | None = None,
                workers: int | None = None, scheduler: str | None = None,
                out: str | os.PathLike | None = None, execute_reference: bool = False,
                progress: bool = True) -> list[dict]:
    """Grade every ``*.ipynb`` in ``folder``; returns the reports, sorted by file name.

    Runs ``workers`` notebooks at a time here (default: CPU count), or on the Dask cluster at
    ``scheduler`` (workers need this project at the same path, or importable, and its data).
    With ``out``, writes ``scores.csv``, ``pass_rates.png``, ``reports/<name>.json`` and
    ``executed/<name>.ipynb`` there. A failing, looping or crashing notebook never stops the others.
    """
    from tqdm.auto import tqdm

    options = options or Options()
    folder = Path(folder)
    if not folder.is_dir():
        raise GradingError(f"{folder}: not a folder; give the folder holding the submissions (*.ipynb).")
    paths = sorted(folder.glob("*.ipynb"))
    if not paths:
        raise GradingError(f"{folder}: no submissions (*.ipynb files) in this folder.")
    spec = load_reference(reference, options, execute_reference)
    options = replace(options, workdir=str(options.workdir or Path(reference).resolve().parent))
    jobs = [(p.name, p.read_bytes()) for p in paths]
    if scheduler:
        from distributed import as_completed as completed

        client = _connect(scheduler)
        runner, submit = client, partial(client.submit, pure=False)
    else:
        completed = as_completed
        runner = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1)  # each job is a process
        submit = runner.submit
    reports = []
    with runner, tqdm(total=len(jobs), desc="grading", unit="notebook", disable=not progress) as bar:
        futures = {submit(grade_source, name, data, spec, asdict(options)): name for name, data in jobs}
        for future in completed(futures):
            try:
                reports.append(future.result())
            except Exception as err:  # a Dask worker died, or cannot import grading (see README)
                reports.append(_crashed(futures[future], err, spec, options))
            bar.update()
    reports.sort(key=lambda r: r["submission"])
    if out is not None:
        write_results(reports, list(spec["exercises"]), Path(out))
    return reports


def _connect(scheduler: str):
    from distributed import Client

    try:
        return Client(scheduler, timeout="30s")
    except OSError as err:
        raise GradingError(f"could not reach the Dask scheduler at {scheduler!r} ({err}). Check the "
                           "address (e.g. tcp://host:8786) and that `dask scheduler` runs there.") from None


def _crashed(name: str, err: Exception, spec: dict, options: Options) -> dict:
    return {"submission": name, "reference": spec["reference"], "status": "error",
            "error": f"grading crashed: {err!r}", "passed": 0, "total": len(spec["exercises"]),
            "score": 0.0, "exercises": [], "seconds": 0.0, "options": asdict(options), "executed": None}


def write_results(reports: list[dict], exercises: list[str], out: Path) -> None:
    """Write ``scores.csv`` (1/0 per exercise), per-notebook JSON and executed notebooks, a chart."""
    (out / "reports").mkdir(parents=True, exist_ok=True)
    (out / "executed").mkdir(exist_ok=True)
    with open(out / "scores.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "status", "score", "passed", "total", *exercises, "notes"])
        for r in reports:
            verdicts = {e["exercise"]: e["verdict"] for e in r["exercises"]}
            notes = r["error"] or "; ".join(f"{e['exercise']}: {e['verdict']}" for e in r["exercises"]
                                            if e["verdict"] != "pass")
            writer.writerow([r["submission"], r["status"], r["score"], r["passed"], r["total"],
                             *[int(verdicts.get(x) == "pass") for x in exercises], notes])
    for r in reports:
        stem = Path(r["submission"]).stem
        if r.get("executed"):
            (out / "executed" / f"{stem}.ipynb").write_text(r["executed"], encoding="utf-8")
        (out / "reports" / f"{stem}.json").write_text(json.dumps(_public(r), indent=1), encoding="utf-8")
    plot_pass_rates(reports, exercises, out / "pass_rates.png")


def _public(report: dict) -> dict:
    return {k: v for k, v in report.items() if k != "executed"}


def plot_pass_rates(reports: list[dict], exercises: list[str], path: Path) -> None:
    """A bar chart of the share of submissions passing each exercise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [sum(any(e["exercise"] == x and e["verdict"] == "pass" for e in r["exercises"]) for r in reports)
             / max(1, len(reports)) for x in exercises]
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(exercises)), 3))
    ax.bar(exercises, [100 * r for r in rates], color="tab:green")
    ax.set_ylim(0, 100)
    ax.set_ylabel("submissions passing (%)")
    ax.set_title(f"{len(reports)} submissions")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------- diff

def _diff(a, b, outputs_only: bool):
    from nbdime import diff_notebooks
    from nbdime.diffing.notebooks import reset_notebook_differ, set_notebook_diff_targets

    set_notebook_diff_targets(sources=not outputs_only, outputs=True, attachments=not outputs_only,
                              metadata=False, identifier=False, details=False)
    try:
        return diff_notebooks(a, b)
    finally:
        reset_notebook_differ()


def diff_text(a_path, b_path, outputs_only: bool = False, color: bool = False) -> str:
    """nbdime's terminal diff of two notebooks (sources and outputs; no metadata, ids, counts).

    Returns "" when they do not differ.
    """
    from nbdime.prettyprint import PrettyPrintConfig, pretty_print_notebook_diff

    a, b = read_notebook(a_path), read_notebook(b_path)
    diff = _diff(a, b, outputs_only)
    buffer = io.StringIO()
    include = SimpleNamespace(sources=not outputs_only, outputs=True, attachments=not outputs_only,
                              metadata=False, id=False, details=False)
    config = PrettyPrintConfig(out=buffer, include=include, use_git=False, use_diff=False, use_color=color)
    pretty_print_notebook_diff(str(a_path), str(b_path), a, diff, config)
    return buffer.getvalue()


def diff_html(a_path, b_path, html_path, outputs_only: bool = False) -> int:
    """Write a standalone HTML page (no server) showing the changed cells of two notebooks side by side.

    Uses nbdime's diff to find added, removed and changed cells; changed sources and output texts
    are shown with difflib, changed images both. Returns the number of changed cells.
    """
    a, b = read_notebook(a_path), read_notebook(b_path)
    diff = _diff(a, b, outputs_only)
    cell_ops = next((e.diff for e in diff if e.key == "cells"), [])
    blocks, ai, bi = [], 0, 0
    for op in cell_ops:
        ai, bi = ai + (op.key - ai), bi + (op.key - ai)
        if op.op == "addrange":
            for cell in op.valuelist:
                blocks.append(_cell_block(None, cell, None, bi, outputs_only))
                bi += 1
        elif op.op == "removerange":
            for _ in range(op.length):
                blocks.append(_cell_block(a.cells[ai], None, ai, None, outputs_only))
                ai += 1
        elif op.op == "patch":
            blocks.append(_cell_block(a.cells[ai], b.cells[bi], ai, bi, outputs_only))
            ai, bi = ai + 1, bi + 1
    blocks = [block for block in blocks if block]  # patches of ids only show nothing
    title = f"{Path(a_path).name} vs {Path(b_path).name}"
    summary = f"{len(blocks)} cell(s) differ" if blocks else "The notebooks' sources and outputs are the same."
    page = _HTML.format(title=html.escape(title), a=html.escape(str(a_path)), b=html.escape(str(b_path)),
                        summary=summary, body="\n".join(blocks))
    Path(html_path).write_text(page, encoding="utf-8")
    return len(blocks)


def _images(cell) -> list[str]:
    return [o["data"]["image/png"] for o in (cell or {}).get("outputs", [])
            if "image/png" in o.get("data", {})]


def _cell_block(a_cell, b_cell, ai, bi, outputs_only) -> str:
    """HTML for one added, removed or changed cell; "" when nothing shown differs."""
    label = f"cell {ai if ai is not None else '-'} &rarr; {bi if bi is not None else '-'}"
    kind = "removed" if b_cell is None else "added" if a_cell is None else "changed"
    parts = [f'<h2 class="{kind}">{label}: {kind}</h2>']
    sections = [("output", output_text)] if outputs_only else [("source", lambda c: c.get("source", "")),
                                                                  ("output", output_text)]
    for what, get in sections:
        old = get(a_cell) if a_cell is not None else ""
        new = get(b_cell) if b_cell is not None else ""
        if old != new:
            table = difflib.HtmlDiff(wrapcolumn=80).make_table(
                old.splitlines(), new.splitlines(), f"{what} (A)", f"{what} (B)")
            parts.append(table)
    old_img, new_img = _images(a_cell), _images(b_cell)
    if old_img != new_img:
        imgs = "".join("<td>" + "".join(f'<img src="data:image/png;base64,{"".join(i.split())}">' for i in side)
                       + "</td>" for side in (old_img, new_img))
        parts.append(f'<table class="images"><tr><th>images (A)</th><th>images (B)</th></tr><tr>{imgs}</tr></table>')
    return "<section>" + "\n".join(parts) + "</section>" if len(parts) > 1 else ""


_HTML = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
table.diff {{ font-family: monospace; border-collapse: collapse; margin: 0.5em 0; }}
table.diff td, table.diff th {{ padding: 0 0.4em; vertical-align: top; }}
.diff_header {{ background: #eee; color: #888; }}
.diff_add {{ background: #c8f0c8; }} .diff_chg {{ background: #f6f0a0; }} .diff_sub {{ background: #f8c8c8; }}
h2 {{ font-size: 1em; margin-top: 1.5em; }} h2.added {{ color: #070; }} h2.removed {{ color: #a00; }}
table.images img {{ max-width: 45vw; }}
</style></head><body>
<h1>{title}</h1>
<p>A: <code>{a}</code><br>B: <code>{b}</code></p>
<p>{summary}</p>
{body}
</body></html>
"""


# --------------------------------------------------------------------------- command line

def _add_grading_options(parser: argparse.ArgumentParser) -> None:
    d = Options()
    parser.add_argument("--reference", required=True, help="the reference notebook, with graded cells tagged exercise:<name>")
    parser.add_argument("--timeout", type=float, default=d.cell_timeout, help=f"seconds per cell (default {d.cell_timeout:g})")
    parser.add_argument("--notebook-timeout", type=float, default=d.notebook_timeout,
                        help=f"seconds per notebook before it is killed (default {d.notebook_timeout:g})")
    parser.add_argument("--rtol", type=float, default=d.rtol, help=f"relative tolerance for numbers (default {d.rtol:g})")
    parser.add_argument("--atol", type=float, default=d.atol, help=f"absolute tolerance for numbers (default {d.atol:g})")
    parser.add_argument("--kernel", default=d.kernel, help="Jupyter kernel name (default python3)")
    parser.add_argument("--workdir", default=None, help="working folder of the kernel (default: the reference's folder)")
    parser.add_argument("--execute-reference", action="store_true",
                        help="execute the reference first instead of using its recorded outputs")


def _options(args) -> Options:
    return Options(cell_timeout=args.timeout, notebook_timeout=args.notebook_timeout, rtol=args.rtol,
                   atol=args.atol, kernel=args.kernel, workdir=args.workdir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m grading", description=__doc__.split("\n\n")[0],
        epilog="Graded cells carry the cell tag exercise:<name> in the reference notebook. Exit codes: "
               "0 every exercise passed (diff: no differences), 1 some exercise did not pass (diff: the "
               "notebooks differ), 2 could not grade (not a notebook, unusable reference, missing file).")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("grade", help="grade one submission against the reference")
    p.add_argument("submission")
    _add_grading_options(p)
    p.add_argument("--json", help="write the JSON report here")
    p.add_argument("--executed", help="save the executed submission here (.ipynb)")

    p = commands.add_parser("class", help="grade every *.ipynb in a folder (in parallel, or on Dask)")
    p.add_argument("folder")
    _add_grading_options(p)
    p.add_argument("--workers", type=int, default=None, help="notebooks run at once here (default: CPU count)")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--out", default="grading-results",
                   help="folder for scores.csv, pass_rates.png, reports/, executed/ (default grading-results)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = commands.add_parser("diff", help="diff two notebooks with nbdime (terminal, and HTML)")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--html", help="also write a standalone HTML page here")
    p.add_argument("--outputs-only", action="store_true", help="compare outputs only, not sources")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto")

    p = commands.add_parser("execute", help="run a notebook the way the grader does")
    p.add_argument("notebook")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--timeout", type=float, default=Options.cell_timeout)
    p.add_argument("--kernel", default=Options.kernel)
    p.add_argument("--workdir", default=None, help="working folder (default: the notebook's folder)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 all passed / same, 1 some failed / differ, 2 error)."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "grade":
            report = grade(args.submission, args.reference, _options(args), args.execute_reference)
            print(format_table(report), end="")
            if args.json:
                Path(args.json).write_text(json.dumps(_public(report), indent=1), encoding="utf-8")
            if args.executed and report["executed"]:
                Path(args.executed).write_text(report["executed"], encoding="utf-8")
            return exit_code([report])
        if args.command == "class":
            reports = grade_class(args.folder, args.reference, _options(args), args.workers, args.scheduler,
                                  args.out, args.execute_reference, progress=not args.no_progress)
            for r in reports:
                verdicts = ", ".join(f"{e['exercise']}={e['verdict']}" for e in r["exercises"]) or r["error"]
                print(f"{r['submission']}: {r['passed']}/{r['total']}  {verdicts}")
            print(f"scores: {Path(args.out) / 'scores.csv'}")
            return EXIT_PASS if all(r["status"] == "graded" and r["passed"] == r["total"] for r in reports) else EXIT_FAIL
        if args.command == "diff":
            color = sys.stdout.isatty() if args.color == "auto" else args.color == "always"
            text = diff_text(args.a, args.b, args.outputs_only, color)
            print(text or "The notebooks' sources and outputs are the same.", end="" if text else "\n")
            if args.html:
                diff_html(args.a, args.b, args.html, args.outputs_only)
                print(f"HTML diff: {args.html}")
            return EXIT_FAIL if text else EXIT_PASS
        if args.command == "execute":
            source = Path(args.notebook)
            execute_notebook(source, Path(args.output), args.timeout,
                             Path(args.workdir) if args.workdir else source.resolve().parent, args.kernel)
            return EXIT_PASS
    except GradingError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_ERROR


if __name__ == "__main__":
    import grading  # run the importable module, so that Dask workers find grading.grade_source by name

    sys.exit(grading.main())
