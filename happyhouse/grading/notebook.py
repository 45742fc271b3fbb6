"""Notebooks as the grader sees them: reading and validating files, graded cells, the text a cell showed.

Also the grader's shared vocabulary: its errors, :class:`Options`, exit codes and verdicts.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import nbformat

#: The project checkout (or, when installed, the folder holding the package): kernels can import from it.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
EXERCISE_TAG = "exercise:"
VERDICTS = ("pass", "fail", "error", "timeout", "missing", "not-run")
EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2


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
    full: bool = False  # True: run every cell, ignoring the reference's grading:skip / grading:short tags
    sandbox: bool = True  # False (--no-sandbox): run with the grader's rights; every report says so
    workspace: str | None = None  # None: written from this project (see workspace.py)
    memory_mb: float = 4096.0  # address space (RLIMIT_AS) of each process in the sandbox (TensorFlow maps ~2-3 GiB), and their resident sum
    max_output_mb: float = 8.0  # outputs kept per notebook
    seed: int | None = None  # the hidden tests' inputs; None: drawn per run
    hidden_tests: str | None = None  # None: hidden_tests/<reference stem>.py beside the reference


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


def shorten(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."
