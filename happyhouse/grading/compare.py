"""Comparing a submission with the reference: what each exercise must print, which cells answer it,
numbers within a tolerance, and one verdict per exercise."""
from __future__ import annotations

import re

import numpy as np

from .mode import grading_plan
from .notebook import EXERCISE_TAG, GradingError, Options, shorten, exercise_cells, output_text

#: A number in text: 3, -2.5, 1., .5, 6.02e23, 1E-05, nan, -inf; not digits inside words (float32, conv4_2).
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|(?i:nan|inf))(?!\w)")


def reference_spec(reference, name: str, options: Options) -> dict:
    """What each exercise must print, from a reference notebook with recorded outputs.

    Returns ``{"reference": name, "exercises": {exercise: {"expected", "ids", "rtol", "atol"}},
    "plan": [...]}``; a reference cell's metadata ``{"grading": {"rtol": .., "atol": ..}}``
    overrides the tolerances; ``plan`` lists the cells grading mode skips or shortens (see
    :func:`.mode.grading_plan`; empty with ``options.full``).
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
    plan = grading_plan(reference, name)  # checked even for a full run: a broken tag is an error either way
    return {"reference": name, "exercises": exercises, "plan": [] if options.full else plan}


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
                return f"line {k + 1} differs: expected {shorten(e)!r}, got {shorten(g)!r}"
        return "the text differs"  # only line breaks moved
    for k, (e, g) in enumerate(zip(NUMBER.findall(expected), NUMBER.findall(got)), start=1):
        both_int = re.fullmatch(r"[-+]?\d+", e) and re.fullmatch(r"[-+]?\d+", g)
        same = int(e) == int(g) if both_int else bool(
            np.isclose(float(g), float(e), rtol=rtol, atol=atol, equal_nan=True))
        if not same:
            return f"number {k}: expected {e}, got {g} (rtol={rtol:g}, atol={atol:g})"
    return None


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
                return _stop_verdict(state["stopped"]), f"cell {i}: {state['problem']}"
            return "not-run", f"cell {i} did not run ({state.get('problem') or 'an earlier cell stopped the notebook'})"
        if status == "error":
            err = next((o for o in executed.cells[i].outputs if o.get("output_type") == "error"), {})
            return "error", f"cell {i} raised {err.get('ename', 'an error')}: {shorten(err.get('evalue', ''))}" + _earlier(executed, ran, i)
    difference = compare_text(want["expected"], got, want["rtol"], want["atol"])
    return ("pass", "") if difference is None else ("fail", difference)


def _stop_verdict(stopped) -> str:
    """The verdict of the cell a stopped notebook was in: "timeout", or "error" (a sandbox limit);
    reports from before the limits recorded ``stopped`` as True, a timeout."""
    return stopped if stopped in ("timeout", "error") else "timeout"


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
