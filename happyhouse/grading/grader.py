"""Grading: one submission, or a class in parallel here or on a Dask cluster; never stopped by a bad notebook."""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import nbformat

from .assignment import function_specs, review
from .compare import judge, reference_spec
from .execute import PROJECT_ROOT, STOP, run_submission
from .hidden import fingerprint, hidden_tests_path, load_cases, verdict
from .mode import apply_plan, grading_plan
from .notebook import (EXERCISE_TAG, EXIT_ERROR, EXIT_FAIL, EXIT_PASS, GradingError, NotebookFileError, Options,
                       exercise_cells, parse_notebook, read_notebook)
from .release import graded_function
from .report import write_report, write_results
from .workers import MB, auto_workers, available_memory


MAX_NOTEBOOK_BYTES = 64 * MB
NO_SANDBOX = ("graded WITHOUT the sandbox (--no-sandbox): the notebook ran with the grader's rights and "
              "could read the reference and change results; use only for trusted notebooks")
NO_HIDDEN_TESTS = ("graded WITHOUT hidden tests ({path} not found): verdicts compare printed outputs only, which "
                   "a notebook can print without computing them; put the hidden tests there or pass --hidden-tests")


def grade_source(name: str, data: bytes | str, spec: dict, options: Options | dict,
                 threads: int | None = None) -> dict:
    """Grade one submission given as notebook text; never raises (problems become the report's error).

    ``threads``: CPU threads for its kernel when several notebooks share the cores (see
    :func:`.execute.grading_env`); None: TensorFlow's default.

    With hidden tests (``spec["hidden_run"]``, see :func:`prepare_hidden`) they decide each
    exercise's verdict; the printed outputs are compared too and reported as ``feedback``.
    Returns the report: ``submission``, ``sha256``, ``reference``, ``status`` (graded / error),
    ``error``, ``passed``, ``total``, ``points``, ``max_points``, ``score``, ``exercises`` (see
    :func:`judge`; with ``decided_by``, ``points``, ``feedback``), ``sandbox``, ``cells`` (grading
    mode, see :func:`.mode.apply_plan`), ``peak_memory_mb``, ``seconds``, ``options`` and
    ``executed`` (the executed notebook as JSON text, or None).
    """
    options = Options(**options) if isinstance(options, dict) else options
    workdir = Path(options.workdir or PROJECT_ROOT)
    start = time.monotonic()
    raw = data.encode() if isinstance(data, str) else data
    points = spec.get("points", {})
    report = {**blank_report(name, spec, options), "sha256": hashlib.sha256(raw).hexdigest()}
    try:
        if len(raw) > MAX_NOTEBOOK_BYTES:
            raise NotebookFileError(f"{name}: the notebook is {len(raw) / MB:.0f} MB, more than the "
                                    f"{MAX_NOTEBOOK_BYTES // MB} MB a submission may be; clear its outputs and save it again.")
        nb = parse_notebook(raw, name)
        use_reference_tests(nb, spec)
        report["cells"] = apply_plan(nb, spec.get("plan", []))
        hidden = spec.get("hidden_run")
        report["hidden_seed"] = hidden["seed"] if hidden else None
        executed, _, values = run_submission(
            nb, options, workdir, threads,
            {"drawn": hidden["drawn"], "reference": hidden["reference"]} if hidden else None)
        report["peak_memory_mb"] = executed.metadata["grading"].get("peak_memory_mb")
        results = _decide(judge(executed, spec), hidden, values)
        report["exercises"] = review(results, executed, spec)
        for result in report["exercises"]:
            result["points"] = points.get(result["exercise"], 1.0) if result["verdict"] == "pass" else 0.0
        report["executed"] = nbformat.writes(executed)
    except Exception as err:  # one bad submission must never stop a class
        report["status"] = "error"
        report["error"] = str(err) if isinstance(err, GradingError) else f"{type(err).__name__}: {err}"
    report["passed"] = sum(e["verdict"] == "pass" for e in report["exercises"])
    report["points"] = float(sum(e["points"] for e in report["exercises"]))
    report["score"] = round(report["points"] / report["max_points"], 4) if report["max_points"] else 0.0
    report["seconds"] = round(time.monotonic() - start, 2)
    return report


def _decide(results: list[dict], hidden: dict | None, values: dict) -> list[dict]:
    """The hidden tests' verdict for each exercise that has them (the printed output's verdict becomes
    ``feedback``); the others keep the printed output's. Changes and returns ``results``."""
    for result in results:
        x = result["exercise"]
        if hidden and x in hidden["drawn"]:
            result["feedback"] = {"verdict": result["verdict"], "reason": result["reason"]}
            result["verdict"], result["reason"] = verdict(hidden["drawn"][x], hidden["reference"][x], values.get(x),
                                                          values["$status"].get(x), values["$problem"])
            result["decided_by"] = "hidden tests"
        else:
            result["decided_by"] = "printed output"
    return results


def use_reference_tests(nb, spec: dict) -> None:
    """The graded cells come from the reference: a submission's cell with a reference graded cell's id
    (else, for a test cell, the same source) gets that cell's tags, and a test cell its source too;
    every other cell loses its ``exercise:`` tags (a student's own tags never decide). Changes ``nb``."""
    graded = [t for x in spec["exercises"].values() for t in x.get("tests", [])]
    by_id = {t["id"]: t for t in graded}
    by_source = {_normalised(t["source"]): t for t in graded if t["test"]}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        ref = by_id.get(cell.get("id")) or by_source.get(_normalised(cell.source))
        tags = [t for t in cell.get("metadata", {}).get("tags", []) if not t.startswith(EXERCISE_TAG)]
        if ref:
            tags += [t for t in ref["tags"] if t.startswith(EXERCISE_TAG)]
            if ref["test"]:
                cell.source = ref["source"]
        cell.metadata["tags"] = tags


def _normalised(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def with_workdir(options: Options, reference: str | os.PathLike) -> Options:
    """``options`` with its working folder set: the given one, else the reference's folder."""
    return replace(options, workdir=str(options.workdir or Path(reference).resolve().parent))


def load_reference(reference: str | os.PathLike, options: Options, execute: bool = False) -> dict:
    """The spec of a reference notebook (see :func:`reference_spec`), executing it first if asked.

    An executed reference runs in the same mode as the submissions (grading mode: its skipped cells
    skipped, its shortened cells short; ``options.full``: every cell).
    """
    nb = read_notebook(reference)
    plan = grading_plan(nb, str(reference))
    if execute:
        done = apply_plan(nb, [] if options.full else plan)
        nb, problem, _ = run_submission(nb, options, Path(with_workdir(options, reference).workdir))
        if problem:
            raise GradingError(f"{reference}: the reference could not be executed: {problem}")
        ran = nb.metadata["grading"]["cells"]
        for c in done["shortened"]:
            if ran.get(str(c["cell"]), {}).get("status") != "ok":
                raise GradingError(f"{reference}: cell {c['cell']}'s short settings (metadata grading.short) did not "
                                   f"run: {_error_of(nb.cells[c['cell']])}; fix them, or grade with --full.")
    spec = reference_spec(nb, str(reference), options)
    spec["points"] = exercise_points(nb)
    for exercise, indices in exercise_cells(nb).items():  # the visible tests, given to every submission by id
        spec["exercises"][exercise]["tests"] = [
            {"id": nb.cells[i].get("id"), "source": nb.cells[i].source, "tags": list(nb.cells[i].metadata.get("tags", [])),
             "test": not graded_function(nb.cells[i].source)} for i in indices]
    hidden = Path(options.hidden_tests) if options.hidden_tests else hidden_tests_path(reference)
    if options.hidden_tests and not hidden.is_file():
        raise GradingError(f"--hidden-tests {hidden}: no such file; give the hidden tests' module, or leave the "
                           f"option out to use {hidden_tests_path(reference)}.")
    spec["hidden_tests_looked_at"] = str(hidden)
    spec["hidden_tests"] = str(hidden) if hidden.is_file() else None
    spec["reference_path"] = str(Path(reference).resolve())
    spec["functions"] = function_specs(nb)  # graded functions: placeholders, cells (see assignment.py)
    spec["plan"] = [] if options.full else plan  # from the reference as written (tags, not the short sources)
    return spec


def exercise_points(reference) -> dict[str, float]:
    """Exercise -> points: metadata ``grading.points`` (or nbgrader's ``points``) of its cells, else 1."""
    points = {}
    for exercise, indices in exercise_cells(reference).items():
        for i in indices:
            meta = reference.cells[i].get("metadata", {})
            value = meta.get("grading", {}).get("points", meta.get("nbgrader", {}).get("points"))
            if value is not None:
                points[exercise] = float(value)
        points.setdefault(exercise, 1.0)
    return points


def prepare_hidden(spec: dict, options: Options, seed: int | None = None) -> int | None:
    """Draw the hidden tests with ``seed`` (None: a fresh one) and run them on the reference, in the same
    way as a submission (its grading plan, the sandbox); sets ``spec["hidden_run"]``; returns the seed.

    Raises GradingError when the reference fails its own hidden tests.
    """
    if not spec.get("hidden_tests"):
        return None
    seed = seed if seed is not None else (options.seed if options.seed is not None else secrets.randbits(63))
    drawn = load_cases(spec["hidden_tests"], seed)
    reference = Path(spec["reference_path"])
    nb = read_notebook(reference)
    apply_plan(nb, spec.get("plan", []))
    _, problem, values = run_submission(nb, options, Path(with_workdir(options, reference).workdir),
                                        hidden={"drawn": drawn, "reference": None})
    for exercise, test in drawn.items():
        got = values.get(exercise)
        why = problem or (values["$status"].get(exercise, {}).get("error") if not got else
                          got.get("missing") or got.get("invalid") or
                          next((f"case {k}: {c['error']}" for k, c in enumerate(got["cases"], 1) if "error" in c), None))
        if why or not got:
            raise GradingError(f"{reference}: the reference fails its own hidden tests for {exercise!r}: "
                               f"{why or 'no values'}; fix {spec['hidden_tests']} or the reference.")
    spec["hidden_run"] = {"seed": seed, "drawn": drawn, "reference": values,
                          "fingerprint": fingerprint(spec["hidden_tests"])}
    return seed


def grade(submission: str | os.PathLike, reference: str | os.PathLike, options: Options | None = None,
          execute_reference: bool = False) -> dict:
    """Grade one submission file against a reference notebook; returns the report (see grade_source).

    Raises GradingError when the reference cannot be used; a bad submission gives status error.
    """
    options = with_workdir(options or Options(), reference)
    _check_sandbox(options)
    spec = load_reference(reference, options, execute_reference)
    path = Path(submission)
    if not path.is_file():
        raise NotebookFileError(f"{path}: {'is a folder' if path.is_dir() else 'no such file'}; "
                                "expected a Jupyter notebook (.ipynb) file.")
    raw = _read_submission(path)
    try:
        parse_notebook(raw, str(path))
    except NotebookFileError:
        pass  # refused by grade_source at once: the reference's hidden run would be wasted on it
    else:
        prepare_hidden(spec, options)
    return grade_source(str(path), raw, spec, options)


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
    options = options or Options()
    paths = _submissions(Path(folder))
    _check_sandbox(options)
    options = with_workdir(options, reference)
    spec = load_reference(reference, options, execute_reference)
    run = _run_record(spec, options, reference, execute_reference)
    done = _finished(Path(out), run) if out is not None else {}
    reports, jobs = _split_finished(paths, done)
    if jobs:  # (a class graded whole before: the reference's hidden-test run is not needed)
        prepare_hidden(spec, options, run["seed"])
    if out is not None:
        _write_json(Path(out) / "run.json", run)

    def collect(name, future):
        try:
            report = future.result()
        except Exception as err:  # a Dask worker died, or cannot import happyhouse.grading (see docs/grading.md)
            report = _crashed(name, err, spec, options)
        reports.append(report)
        if out is not None:
            write_report(report, Path(out))  # at once: an interrupted class resumes from here

    job = partial(grade_source, spec=spec, options=asdict(options))
    _grade_jobs(jobs, job, collect, scheduler, workers, notebook_memory_mb, progress)
    reports.sort(key=lambda r: r["submission"])
    if out is not None:
        write_results(reports, list(spec["exercises"]), Path(out))
    return reports


def _submissions(folder: Path) -> list[Path]:
    """The ``*.ipynb`` files in ``folder``, sorted; GradingError when it is no folder or holds none."""
    if not folder.is_dir():
        raise GradingError(f"{folder}: not a folder; give the folder holding the submissions (*.ipynb).")
    paths = sorted(folder.glob("*.ipynb"))
    if not paths:
        raise GradingError(f"{folder}: no submissions (*.ipynb files) in this folder.")
    return paths


def _split_finished(paths: list[Path], done: dict) -> tuple[list[dict], list[tuple[str, bytes]]]:
    """(the reports ``done`` already holds for these very bytes, graded by an earlier interrupted
    run with the same seed and reference; the (name, bytes) jobs still to grade)."""
    reports, jobs = [], []
    for p in paths:
        data = _read_submission(p)
        previous = done.get(p.name)
        if previous and previous.get("sha256") == hashlib.sha256(data).hexdigest():
            reports.append(previous)
        else:
            jobs.append((p.name, data))
    return reports, jobs


def _grade_jobs(jobs, job, collect, scheduler, workers, notebook_memory_mb, progress: bool) -> None:
    """``job(name, data)`` for every job, on the Dask cluster at ``scheduler`` or here
    (:func:`_run_here`); ``collect(name, future)`` as each ends, under one progress bar."""
    from tqdm.auto import tqdm

    with tqdm(total=len(jobs), desc="grading", unit="notebook", disable=not progress) as bar:
        def collect_and_count(name, future):
            collect(name, future)
            bar.update()

        if scheduler:
            from distributed import as_completed

            with _connect(scheduler) as client:
                futures = {client.submit(job, name, data, pure=False): name for name, data in jobs}
                for future in as_completed(futures):
                    collect_and_count(futures[future], future)
        else:
            _run_here(jobs, job, workers, notebook_memory_mb, collect_and_count, bar)


def _check_sandbox(options: Options) -> None:
    """One clear error before anything runs when the sandbox cannot start here (see sandbox.check)."""
    if options.sandbox:
        from .sandbox import check

        check()


#: The options whose change can change a verdict: a class resumed with other values is regraded.
VERDICT_OPTIONS = ("cell_timeout", "notebook_timeout", "rtol", "atol", "kernel", "workdir", "full", "sandbox",
                   "workspace", "memory_mb", "max_output_mb")


def _run_record(spec: dict, options: Options, reference, execute_reference: bool = False) -> dict:
    """What a class run's results depend on: the reference, its hidden tests, the seed and the
    options of :data:`VERDICT_OPTIONS`, and whether the reference was executed again (its printed
    outputs are the expected ones)."""
    return {"reference": hashlib.sha256(Path(reference).read_bytes()).hexdigest(),
            "hidden_tests": fingerprint(spec["hidden_tests"]) if spec.get("hidden_tests") else None,
            "seed": options.seed if options.seed is not None else secrets.randbits(63),
            "fixed_seed": options.seed is not None, "sandbox": options.sandbox,
            "options": {**{name: getattr(options, name) for name in VERDICT_OPTIONS},
                        "execute_reference": execute_reference}}


def _finished(out: Path, run: dict) -> dict[str, dict]:
    """Reports of an earlier run of the same class into ``out`` (same reference, hidden tests and
    options; its seed is then kept in ``run``), by submission file name."""
    try:
        before = json.loads((out / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    same = all(before.get(k) == run[k] for k in ("reference", "hidden_tests", "options"))  # options: sandbox too
    if not same or (run.get("fixed_seed") and before.get("seed") != run["seed"]):
        return {}
    run["seed"] = before.get("seed", run["seed"])
    found = {}
    for path in (out / "reports").glob("*.json"):
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(report, dict) and report.get("sha256") and not str(report.get("error") or "").startswith("grading crashed"):
            found[report["submission"]] = report
    return found


def _write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial_path = path.with_suffix(".partial")
    partial_path.write_text(json.dumps(value, indent=1))
    os.replace(partial_path, path)


def _read_submission(path: Path) -> bytes:
    """The file's bytes, at most one more than a submission may have (a huge file is refused, not read)."""
    with open(path, "rb") as f:
        return f.read(MAX_NOTEBOOK_BYTES + 1)


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
    pool = ThreadPoolExecutor(max_workers=limit() if not auto else cores)  # each job is a process
    try:
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
    except KeyboardInterrupt:  # Ctrl-C: the running notebooks are killed now, not waited for
        STOP.set()
        raise
    finally:
        pool.shutdown(cancel_futures=True)
        STOP.clear()


def _connect(scheduler: str):
    from distributed import Client

    try:
        return Client(scheduler, timeout="30s")
    except OSError as err:
        raise GradingError(f"could not reach the Dask scheduler at {scheduler!r} ({err}). Check the "
                           "address (e.g. tcp://host:8786) and that `dask scheduler` runs there.") from None


def blank_report(name: str, spec: dict, options: Options) -> dict:
    """A report of submission ``name`` before it is graded: nothing passed, its warnings said."""
    points = spec.get("points", {})
    return {"submission": name, "sha256": None, "reference": spec["reference"], "status": "graded", "error": None,
            "passed": 0, "total": len(spec["exercises"]), "points": 0.0,
            "max_points": float(sum(points.get(x, 1.0) for x in spec["exercises"])), "score": 0.0,
            "exercises": [], "sandbox": options.sandbox, "cells": None, "peak_memory_mb": None,
            "seconds": 0.0, "options": asdict(options), "executed": None, **report_warnings(spec, options)}


def _crashed(name: str, err: Exception, spec: dict, options: Options) -> dict:
    return {**blank_report(name, spec, options), "status": "error", "error": f"grading crashed: {err!r}"}


def report_warnings(spec: dict, options: Options) -> dict:
    """``{"hidden_tests": bool}``, plus ``{"warning": text}`` when a report's verdicts are weaker than
    they should be: no sandbox, or no hidden tests."""
    looked = spec.get("hidden_tests_looked_at")
    no_tests = NO_HIDDEN_TESTS.format(path=looked) if looked and not spec.get("hidden_tests") else None
    said = [w for w in (None if options.sandbox else NO_SANDBOX, no_tests) if w]
    return {"hidden_tests": bool(spec.get("hidden_tests")), **({"warning": "; ".join(said)} if said else {})}
