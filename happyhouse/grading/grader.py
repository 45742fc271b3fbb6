"""Grading: one submission, or a class in parallel here or on a Dask cluster; never stopped by a bad notebook."""
from __future__ import annotations

import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import nbformat

from .assignment import function_specs, review
from .compare import judge, reference_spec
from .execute import PROJECT_ROOT, run_submission
from .mode import apply_plan, grading_plan
from .notebook import EXIT_ERROR, EXIT_FAIL, EXIT_PASS, GradingError, NotebookFileError, Options, parse_notebook, read_notebook
from .report import write_results
from .workers import MB, auto_workers, available_memory


def grade_source(name: str, data: bytes | str, spec: dict, options: Options | dict,
                 workdir: str | os.PathLike | None = None, threads: int | None = None) -> dict:
    """Grade one submission given as notebook text; never raises (problems become the report's error).

    ``threads``: CPU threads for its kernel when several notebooks share the cores (see
    :func:`.execute.grading_env`); None: TensorFlow's default.

    Returns the report: ``submission``, ``reference``, ``status`` (graded / error), ``error``,
    ``passed``, ``total``, ``score``, ``exercises`` (see :func:`judge`), ``cells`` (grading mode:
    which cells were skipped or shortened, see :func:`.mode.apply_plan`), ``peak_memory_mb``
    (the notebook's process tree), ``seconds``, ``options`` and ``executed`` (the executed
    notebook as JSON text, or None).
    """
    options = Options(**options) if isinstance(options, dict) else options
    workdir = Path(workdir or options.workdir or PROJECT_ROOT)
    start = time.monotonic()
    report = {"submission": name, "reference": spec["reference"], "status": "graded", "error": None,
              "passed": 0, "total": len(spec["exercises"]), "score": 0.0, "exercises": [],
              "cells": None, "peak_memory_mb": None, "seconds": 0.0, "options": asdict(options),
              "executed": None}
    try:
        nb = parse_notebook(data, name)
        report["cells"] = apply_plan(nb, spec.get("plan", []))
        executed, _ = run_submission(nb, options, workdir, threads)
        report["peak_memory_mb"] = executed.metadata["grading"].get("peak_memory_mb")
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
    """The spec of a reference notebook (see :func:`reference_spec`), executing it first if asked.

    An executed reference runs in the same mode as the submissions (grading mode: its skipped cells
    skipped, its shortened cells short; ``options.full``: every cell).
    """
    nb = read_notebook(reference)
    plan = grading_plan(nb, str(reference))
    if execute:
        done = apply_plan(nb, [] if options.full else plan)
        nb, problem = run_submission(nb, options, Path(reference).resolve().parent)
        if problem:
            raise GradingError(f"{reference}: the reference could not be executed: {problem}")
        ran = nb.metadata["grading"]["cells"]
        for c in done["shortened"]:
            if ran.get(str(c["cell"]), {}).get("status") != "ok":
                raise GradingError(f"{reference}: cell {c['cell']}'s short settings (metadata grading.short) did not "
                                   f"run: {_error_of(nb.cells[c['cell']])}; fix them, or grade with --full.")
    spec = reference_spec(nb, str(reference), options)
    spec["functions"] = function_specs(nb)  # graded functions: placeholders, cells (see assignment.py)
    spec["plan"] = [] if options.full else plan  # from the reference as written (tags, not the short sources)
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


def _error_of(cell) -> str:
    err = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
    return f"{err.get('ename')}: {err.get('evalue')}" if err else "it did not finish"


def exit_code(reports: list[dict]) -> int:
    """0 when every report was graded and every exercise passed, 2 when one is an error, else 1."""
    if any(r["status"] == "error" for r in reports):
        return EXIT_ERROR
    return EXIT_PASS if all(r["passed"] == r["total"] for r in reports) else EXIT_FAIL


def grade_class(folder: str | os.PathLike, reference: str | os.PathLike, options: Options | None = None,
                workers: int | str | None = None, scheduler: str | None = None,
                out: str | os.PathLike | None = None, execute_reference: bool = False,
                progress: bool = True, notebook_memory_mb: float | None = None) -> list[dict]:
    """Grade every ``*.ipynb`` in ``folder``; returns the reports, sorted by file name.

    Runs ``workers`` notebooks at a time here (default: CPU count; ``"auto"``: as many as fit in
    the free memory at the peak measured per notebook, see :func:`.workers.auto_workers`; the
    first notebook runs alone to be measured unless ``notebook_memory_mb`` gives a recorded
    peak), or on the Dask cluster at ``scheduler`` (workers need this project at the same path,
    or importable, and its data). With ``out``, writes ``scores.csv``, ``pass_rates.png``,
    ``reports/<name>.json`` and ``executed/<name>.ipynb`` there. A failing, looping or crashing
    notebook never stops the others.
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
    job = partial(grade_source, spec=spec, options=asdict(options))
    reports = []
    with tqdm(total=len(jobs), desc="grading", unit="notebook", disable=not progress) as bar:
        def collect(name, future):
            try:
                reports.append(future.result())
            except Exception as err:  # a Dask worker died, or cannot import happyhouse.grading (see docs/grading.md)
                reports.append(_crashed(name, err, spec, options))
            bar.update()

        if scheduler:
            from distributed import as_completed as completed

            with _connect(scheduler) as client:
                futures = {client.submit(job, name, data, pure=False): name for name, data in jobs}
                for future in completed(futures):
                    collect(futures[future], future)
        else:
            _run_here(jobs, job, workers, notebook_memory_mb, collect, bar)
    reports.sort(key=lambda r: r["submission"])
    if out is not None:
        write_results(reports, list(spec["exercises"]), Path(out))
    return reports


def _run_here(jobs, job, workers, notebook_memory_mb, collect, bar) -> None:
    """Run ``job(name, data)`` for every job, ``workers`` at a time (an int, or "auto": sized by memory)."""
    cores = os.cpu_count() or 1
    auto = workers == "auto"
    free = available_memory() if auto else 0  # measured before any notebook runs
    peak = notebook_memory_mb * MB if notebook_memory_mb else None

    def limit():
        return auto_workers(free, peak, cores) if auto else int(workers or cores)

    shown = None
    pending, running = list(jobs), {}
    with ThreadPoolExecutor(max_workers=limit() if not auto else cores) as pool:  # each job is a process
        while pending or running:
            if auto and limit() != shown:
                shown = limit()
                bar.write(f"workers auto: {shown} at a time ({free / 2**30:.1f} GiB free, "
                          + (f"{peak / MB:.0f} MB per notebook" if peak else "first notebook measured alone")
                          + f", {cores} cores)", file=sys.stderr)
            while pending and len(running) < limit():
                name, data = pending.pop(0)
                # several at once: each kernel's TensorFlow gets its share of the cores, not all of them
                threads = max(1, cores // limit()) if limit() > 1 else None
                running[pool.submit(job, name, data, threads=threads)] = name
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                collect(running.pop(future), future)
                if future.exception() is None and future.result().get("peak_memory_mb"):
                    peak = max(peak or 0, future.result()["peak_memory_mb"] * MB)


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
            "score": 0.0, "exercises": [], "cells": None, "peak_memory_mb": None, "seconds": 0.0,
            "options": asdict(options), "executed": None}
