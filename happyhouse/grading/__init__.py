"""Grading: re-execute students' notebooks, judge their graded functions, diff notebooks.

A graded cell carries the cell tag ``exercise:<name>`` in the reference notebook. A submission's
graded cells are found by the reference's cell ids (else, for a test cell, by its source); the
student's own tags never decide, and the reference's test cells replace the student's. Each
submission runs in a bubblewrap sandbox (:mod:`.sandbox`: its own user and namespaces, no
network, read-only project and data, bounded /tmp, memory and output) with a fresh kernel;
hidden tests (``hidden_tests/<reference stem>.py`` beside the reference, :mod:`.hidden`) drawn
per run decide each exercise's verdict, and the printed outputs, compared with tolerances
(``|got - expected| <= atol + rtol * |expected|``), are feedback. A reference without hidden
tests is graded on printed outputs, and every report says so. A cell that runs past
``cell_timeout`` is interrupted and the rest of the notebook still runs; a notebook that runs
past ``notebook_timeout`` is killed with its kernel. Exit codes: 0 every exercise passed, 1 some
exercise did not, 2 the input could not be graded (not a notebook, no reference exercises,
missing file).

Modules, one per concern: :mod:`.notebook` (reading notebooks, errors, options),
:mod:`.execute` (running notebooks), :mod:`.compare` (matching cells, tolerances, verdicts),
:mod:`.grader` (one submission or a class, here or on Dask), :mod:`.report` (tables, CSV, JSON,
chart), :mod:`.diff` (nbdime diffs), :mod:`.release` (student versions of a reference),
:mod:`.assignment` (placeholders left, borrowed implementations, dependencies), :mod:`.mode`
(grading mode: the reference's ``grading:skip`` and ``grading:short`` cell tags),
:mod:`.workers` (``--workers auto``: notebooks at once by memory), :mod:`.cli` (the
``grading`` command).
"""
from __future__ import annotations

import importlib

#: Public name -> the module defining it. Imported on first use, so that ``python -m
#: happyhouse.grading`` can prepare its imports (see __main__.py) before nbformat loads.
_API = {
    "notebook": ("EXERCISE_TAG", "VERDICTS", "EXIT_PASS", "EXIT_FAIL", "EXIT_ERROR", "GradingError",
                 "NotebookFileError", "Options", "parse_notebook", "read_notebook", "exercise_cells",
                 "output_text"),
    "compare": ("NUMBER", "reference_spec", "compare_text", "judge"),
    "execute": ("PROJECT_ROOT", "grading_env", "execute_notebook", "run_submission"),
    "grader": ("grade_source", "load_reference", "prepare_hidden", "grade", "exit_code", "grade_class"),
    "report": ("format_table", "write_results", "plot_pass_rates"),
    "diff": ("diff_text", "diff_html"),
    "release": ("release", "student_version", "placeholder", "ReleaseError"),
    "assignment": ("review",),
    "mode": ("SKIP_TAG", "SHORT_TAG", "RUNNER_SKIP_TAG", "grading_plan", "apply_plan"),
    "workers": ("auto_workers", "available_memory", "tree_rss", "tree_pss"),
    "hidden": ("Tensor", "Variable", "Lookup", "FromReference", "ToyCost", "Opaque", "hidden_tests_path",
               "load_cases", "compare_values", "verdict"),
    "sandbox": ("SandboxError", "Limits"),
    "workspace": ("write_workspace", "default_workspace"),
    "cli": ("build_parser", "main"),
}
_WHERE = {name: module for module, names in _API.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
