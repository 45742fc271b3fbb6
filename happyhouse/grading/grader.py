"""Grading: one submission, or a class in parallel here or on a Dask cluster; never stopped by a bad notebook."""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import nbformat

from .assignment import function_specs, review
from .compare import judge, reference_spec
from .execute import PROJECT_ROOT, run_submission
from .notebook import EXIT_ERROR, EXIT_FAIL, EXIT_PASS, GradingError, NotebookFileError, Options, parse_notebook, read_notebook
from .report import write_results


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
        report["exercises"] = review(judge(executed, spec), executed, spec)
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
    spec = reference_spec(nb, str(reference), options)
    spec["functions"] = function_specs(nb)  # graded functions: placeholders, cells (see assignment.py)
    return spec


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
            except Exception as err:  # a Dask worker died, or cannot import happyhouse.grading (see docs/grading.md)
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
