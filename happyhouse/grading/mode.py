"""Grading mode: the REFERENCE notebook's cell tags decide which cells of a submission are skipped
or run with short settings when it is graded (a student running the notebook gets the full run).

* ``grading:skip`` -- no exercise needs this cell (a long optimisation, a comparison grid, a picture):
  it is not run.
* ``grading:short`` -- a later exercise needs what this cell makes, but not at full size: the source
  in the reference cell's metadata ``{"grading": {"short": "<source>"}}`` runs in its place
  (e.g. the same call with ``iterations=2`` at a small size).

A submission's cell is found by the reference cell's id (nbformat ids survive copies), else by the
same source; a cell found neither way runs in full. The submission's own tags never decide: its
``grading:*`` tags and metadata are ignored, and a cell the submission tags ``exercise:...`` is
always run in full.
"""
from __future__ import annotations

from .notebook import EXERCISE_TAG, GradingError

SKIP_TAG = "grading:skip"
SHORT_TAG = "grading:short"
from .runner import RUNNER_SKIP_TAG  # the private tag the runner skips; removed from every submission first


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _normalised(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def grading_plan(reference, name: str) -> list[dict]:
    """The reference's skipped and shortened cells, in notebook order.

    Returns ``[{"index", "id", "action": "skip"|"short", "source", "short"}]`` (``source``: the
    reference cell's own source, used to find a cell without id; ``short``: what runs instead, or
    None). Raises GradingError for a tag that cannot work (on a markdown or graded cell, both tags,
    ``grading:short`` without its source).
    """
    plan = []
    for index, cell in enumerate(reference.cells):
        tags = _tags(cell)
        skip, short = SKIP_TAG in tags, SHORT_TAG in tags
        if not (skip or short):
            continue
        where = f"{name}: cell {index}" + (f" (id {cell.get('id')})" if cell.get("id") else "")
        if cell.cell_type != "code":
            raise GradingError(f"{where} is a {cell.cell_type} cell tagged {SKIP_TAG if skip else SHORT_TAG}; "
                               "only code cells run, remove the tag.")
        if skip and short:
            raise GradingError(f"{where} is tagged both {SKIP_TAG} and {SHORT_TAG}; keep one.")
        if any(t.startswith(EXERCISE_TAG) for t in tags):
            raise GradingError(f"{where} is graded ({EXERCISE_TAG}...) and tagged {SKIP_TAG if skip else SHORT_TAG}; "
                               "a graded cell always runs in full, remove the grading tag.")
        replacement = cell.get("metadata", {}).get("grading", {}).get("short") if short else None
        if short and not (isinstance(replacement, str) and replacement.strip()):
            raise GradingError(f"{where} is tagged {SHORT_TAG} but its metadata has no "
                               '{"grading": {"short": "<source to run instead>"}}; add it, or tag the cell '
                               f"{SKIP_TAG} if no exercise needs it.")
        plan.append({"index": index, "id": cell.get("id"), "action": "skip" if skip else "short",
                     "source": cell.source, "short": replacement})
    return plan


def apply_plan(nb, plan: list[dict]) -> dict:
    """Prepare submission ``nb`` (changed in place) for grading mode; ``plan`` from :func:`grading_plan`.

    Skipped cells get :data:`RUNNER_SKIP_TAG` and lose their outputs; shortened cells get the short
    source. Returns what was done, for the report: ``{"mode": "grading"|"full", "skipped",
    "shortened", "not_found"}``, each a list of ``{"cell": index in nb (or None), "id"}``. An empty
    plan is the full run.
    """
    for cell in nb.cells:  # the submission's own copy of the private tag never skips anything
        tags = _tags(cell)
        if RUNNER_SKIP_TAG in tags:
            cell.metadata["tags"] = [t for t in tags if t != RUNNER_SKIP_TAG]
    done = {"mode": "grading" if plan else "full", "skipped": [], "shortened": [], "not_found": []}
    by_id = {cell.get("id"): i for i, cell in enumerate(nb.cells) if cell.get("id")}
    by_source = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            by_source.setdefault(_normalised(cell.source), i)
    for step in plan:
        i = by_id.get(step["id"]) if step["id"] else None
        if i is None or nb.cells[i].cell_type != "code":
            i = by_source.get(_normalised(step["source"]))
        if i is None or any(t.startswith(EXERCISE_TAG) for t in _tags(nb.cells[i])):
            done["not_found"].append({"cell": i, "id": step["id"], "reference_cell": step["index"]})
            continue
        cell = nb.cells[i]
        if step["action"] == "skip":
            cell.metadata["tags"] = _tags(cell) + [RUNNER_SKIP_TAG]
            cell.outputs, cell.execution_count = [], None
            done["skipped"].append({"cell": i, "id": step["id"]})
        else:
            cell.source = step["short"]
            done["shortened"].append({"cell": i, "id": step["id"]})
    return done


def describe(done: dict | None) -> str:
    """One line for the report table, e.g. 'grading mode: skipped cells 4, 6; shortened cell 22'."""
    if not done or done["mode"] == "full":
        return "full run (every cell)"
    parts = []
    for key, word in (("skipped", "skipped"), ("shortened", "shortened"), ("not_found", "ran in full (not found)")):
        cells = [str(c["cell"]) if c["cell"] is not None else f"ref {c['reference_cell']}" for c in done[key]]
        if cells:
            parts.append(f"{word} cell{'s' if len(cells) > 1 else ''} {', '.join(cells)}")
    return "grading mode: " + ("; ".join(parts) or "nothing to skip")
