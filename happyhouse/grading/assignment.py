"""What a student's graded functions really are: placeholders left, the project's code borrowed,
and which exercises depend on which.

Read from the submission's source (its AST), after it ran: a graded function must be written
with ``def`` in its ``# GRADED FUNCTION: name`` cell. Importing it from a project module
(``from nst_utils import gram_matrix``, also with ``as``), reading it from one
(``nst_utils.gram_matrix``, ``getattr(nu, ...)``), assigning it from one, or re-binding it later
with ``from fr_utils import *`` is using the project's implementation: that exercise fails.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

from .execute import PROJECT_ROOT
from .notebook import exercise_cells
from .release import graded_function, placeholder_stubs

BORROWED = "uses the project's implementation"
NOT_IMPLEMENTED = "not implemented"


def project_modules(root: Path = PROJECT_ROOT) -> set[str]:
    """Top-level names importable from the project: its modules (fr_utils, ...) and packages (happyhouse)."""
    names = {p.stem for p in root.glob("*.py")}
    names |= {p.name for p in root.iterdir() if (p / "__init__.py").is_file()}
    return names


def function_specs(reference) -> dict:
    """Graded function name -> {"id": its cell's id, "stubs": its placeholder lines} in a reference."""
    found = {}
    for cell in reference.cells:
        name = graded_function(cell.source) if cell.cell_type == "code" else None
        if name and name not in found:
            found[name] = {"id": cell.get("id"), "stubs": placeholder_stubs(cell.source)}
    return found


def function_cells(nb, functions: dict) -> dict[str, int]:
    """Graded function name -> the index of its cell in ``nb``: by header, else by the reference's cell id."""
    by_header, by_id = {}, {}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        by_id.setdefault(cell.get("id"), index)
        name = graded_function(cell.source)
        if name:
            by_header.setdefault(name, index)
    return {name: by_header.get(name, by_id.get(spec.get("id"))) for name, spec in functions.items()
            if by_header.get(name, by_id.get(spec.get("id"))) is not None}


def _parse(source: str):
    """The AST of a cell, IPython's magics (%..., !...) blanked; None when it does not parse."""
    source = re.sub(r"(?m)^\s*[%!].*$", "", source)
    try:
        return ast.parse(source)
    except SyntaxError:
        return None


def unfinished(source: str, stubs: list[str]) -> list[str]:
    """The placeholder lines (``stubs``, from the reference) still in a student's cell ``source``,
    and ``raise NotImplementedError`` (nbgrader's stub) if present."""
    lines = [line.rstrip() for line in source.splitlines()]
    left = [stub.strip() for stub in dict.fromkeys(stubs) if stub.rstrip() in lines]
    if re.search(r"(?m)^\s*raise NotImplementedError", source):
        left.append("raise NotImplementedError()")
    return left


def borrowed(nb, name: str, def_index: int | None, project: set[str]) -> str | None:
    """How the notebook ``nb`` takes graded function ``name`` from the project instead of its own
    ``def`` in cell ``def_index``; None when it does not."""
    defined_at = None
    if def_index is not None:
        tree = _parse(nb.cells[def_index].source)
        defs = [s for s in (tree.body if tree else []) if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))
                and s.name == name]
        defined_at = defs[-1].lineno if defs else None
    aliases: set[str] = set()  # names bound to project modules
    imported: set[str] = set()  # names imported from project modules
    for index, cell in enumerate(nb.cells):
        tree = _parse(cell.source) if cell.cell_type == "code" else None
        if tree is None:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in project:
                        aliases.add(alias.asname or alias.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                    and node.module.split(".")[0] in project:
                for alias in node.names:
                    where = f"cell {index}: `from {node.module} import {alias.name}`"
                    if name in (alias.name, alias.asname):
                        return f"{where} takes {name} from the project"
                    if alias.name == "*" and _after(index, node.lineno, def_index, defined_at) \
                            and module_defines(node.module, name):
                        return f"{where} re-binds {name} after its def"
                    aliases.add(alias.asname or alias.name)
                    imported.add(alias.asname or alias.name)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == name and isinstance(node.value, ast.Name) \
                    and node.value.id in aliases:
                return f"cell {index} reads `{node.value.id}.{name}`"
            if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                sources = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
                if any(isinstance(t, ast.Name) and t.id == name for t in targets) and sources & (aliases | imported):
                    return f"cell {index} assigns {name} from {', '.join(sorted(sources & (aliases | imported)))}"
    return None


def module_defines(module: str, name: str, root: Path = PROJECT_ROOT) -> bool:
    """Whether the project module ``module`` (dotted) binds ``name`` at its top level (read from its
    source, never imported); True when its source cannot be read."""
    base = root.joinpath(*module.split("."))
    path = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return True
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                (a.asname or a.name.split(".")[0]) == name or a.name == "*" for a in node.names):
            return True
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(n, ast.Name) and n.id == name for t in targets for n in ast.walk(t)):
                return True
    return False


def _after(index, line, def_index, defined_at) -> bool:
    if def_index is None or defined_at is None:
        return True
    return index > def_index or (index == def_index and line > defined_at)


def _names(source: str) -> set[str]:
    tree = _parse(source)
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} if tree else set()


def review(results: list[dict], executed, spec: dict) -> list[dict]:
    """Add to the verdicts of :func:`~.compare.judge` what the source says (changes ``results``).

    An exercise whose graded function is the project's fails ("uses the project's implementation");
    one that did not pass and still holds placeholder code says "not implemented" and which lines;
    one that did not pass and calls another graded function that did not pass names it in
    ``depends_on`` and its reason.
    """
    functions = spec.get("functions") or {}
    if not functions:
        return results
    project = project_modules()
    cells = function_cells(executed, functions)
    tagged = exercise_cells(executed)
    owner = {}  # graded function -> its exercise
    for result in results:
        for name, index in cells.items():
            if index in result["cells"] or name == result["exercise"]:
                owner.setdefault(name, result["exercise"])
    for result in results:
        mine = [n for n, ex in owner.items() if ex == result["exercise"]]
        notes = []
        for name in mine:
            index = cells.get(name)
            how = borrowed(executed, name, index, project)
            if how:
                result["verdict"], result["reason"] = "fail", f"{BORROWED} for {name}: {how}"
                break
            if index is not None and not _defines(executed.cells[index].source, name):
                notes.append(f"cell {index} does not define {name} with def")
            left = unfinished(executed.cells[index].source, functions[name]["stubs"]) if index is not None else []
            if left:
                shown = ", ".join(f"`{line}`" for line in left[:3]) + (", ..." if len(left) > 3 else "")
                notes.append(f"{NOT_IMPLEMENTED}: cell {index} still has the placeholder {shown}")
        if result["verdict"] == "pass" or result["reason"].startswith(BORROWED):
            continue
        if "NotImplementedError" in result["reason"] and not any(NOT_IMPLEMENTED in n for n in notes):
            notes.append(NOT_IMPLEMENTED)
        used = set().union(*(_names(executed.cells[i].source) for i in set(result["cells"]) | set(tagged.get(result["exercise"], []))))
        result["depends_on"] = sorted(ex for n, ex in owner.items() if n in used and ex != result["exercise"])
        if notes:
            result["reason"] = "; ".join(notes) + "; " + result["reason"]
    by_name = {r["exercise"]: r for r in results}
    for result in results:
        failed = [d for d in result.get("depends_on", []) if by_name[d]["verdict"] != "pass"]
        result["depends_on"] = failed
        if failed and result["verdict"] != "pass":
            result["reason"] = f"depends on {', '.join(failed)}, which did not pass; " + result["reason"]
    return results


def _defines(source: str, name: str) -> bool:
    tree = _parse(source)
    return bool(tree) and any(isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name == name
                              for s in tree.body)
