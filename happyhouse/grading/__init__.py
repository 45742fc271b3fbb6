"""Grading: re-execute students' notebooks, compare their graded cells with a reference, diff notebooks.

A graded cell carries the cell tag ``exercise:<name>`` in the reference notebook; its recorded
outputs are what a submission must print. A submission's cells are matched by the same tag,
else by the reference cell's id (nbformat cell ids survive copies). Outputs are compared as
text in which every number is compared with a tolerance (``|got - expected| <= atol + rtol *
|expected|``; integers exactly) and everything else exactly, up to white space.

Each submission runs in its own process (``python -m happyhouse.grading execute``) which starts a
fresh ``python3`` kernel through nbclient, in the reference notebook's folder, with ``PYTHONPATH``
set to this project so ``import fr_utils`` and the data lookup (``COURSE_DATA``) work. A cell that
runs past ``cell_timeout`` is interrupted and the rest of the notebook still runs; a notebook
that runs past ``notebook_timeout`` is killed with its kernel. Exit codes: 0 every exercise
passed, 1 some exercise did not, 2 the input could not be graded (not a notebook, no reference
exercises, missing file).

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
    "workers": ("auto_workers", "available_memory", "tree_rss"),
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
