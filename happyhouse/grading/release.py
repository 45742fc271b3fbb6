"""Student versions of reference notebooks: solutions out, the course's placeholders in.

In a reference notebook each graded function sits in a cell headed ``# GRADED FUNCTION: name``,
its solution between nbgrader's markers ``### BEGIN SOLUTION`` and ``### END SOLUTION``, inside the
course's ``### START CODE HERE ### (≈ N lines)`` ... ``### END CODE HERE ###`` block. The student
version keeps the cell (source outside the markers, tags, id, metadata) and puts the course's
placeholder where the solution was: each assignment becomes ``name = None``, each condition or
loop iterable ``None``, other statements ``None``; comments, blank lines, ``print(...)`` calls and
``else:`` lines stay, so the hints inside the solution stay too. Every code cell's outputs are
cleared; markdown (the "Expected Output" text) is kept as it is.

nbgrader's ``generate_assignment`` reads the same markers (the graded cells carry nbgrader's
``solution`` metadata), replacing each solution with its own stub
(``raise NotImplementedError()``) instead; :mod:`.assignment` recognises both.
"""
from __future__ import annotations

import ast
import copy
import re
import textwrap
from pathlib import Path

import nbformat

from .notebook import GradingError, read_notebook

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
START_CODE, END_CODE = "### START CODE HERE", "### END CODE HERE"
GRADED_FUNCTION = re.compile(r"^\s*#\s*GRADED FUNCTION:\s*([A-Za-z_]\w*)", re.MULTILINE)


class ReleaseError(GradingError):
    """The reference cannot be turned into a student version (markers unbalanced, no solutions, ...)."""


def graded_function(source: str) -> str | None:
    """The name in a cell's ``# GRADED FUNCTION: name`` header, or None."""
    match = GRADED_FUNCTION.search(source)
    return match.group(1) if match else None


def placeholder(solution: str) -> str:
    """The course's placeholder for solution code (any indentation; returned with the same).

    ``pos_dist = tf.reduce_sum(...)`` -> ``pos_dist = None``; ``if dist < 0.7:`` -> ``if None:``;
    ``for (name, db_enc) in database.items():`` -> ``for (name, db_enc) in None:``; a call such as
    ``model["input"].assign(x)`` -> ``None``; ``return x`` -> ``return None``. Comments, blank
    lines, ``print(...)``, ``else:``, ``pass``/``break``/``continue`` and imports stay.
    """
    return "\n".join(_placeholder_lines(solution)[0])


def _placeholder_lines(solution: str) -> tuple[list[str], list[str]]:
    """(all lines of the placeholder, the lines that stand for solution code)."""
    text = textwrap.dedent(solution)
    indent = _indent_of(solution)
    try:
        tree = ast.parse(text)
    except SyntaxError as err:
        raise ReleaseError(f"the solution does not parse ({err.msg}, line {err.lineno}):\n{solution}") from None
    lines = text.splitlines()
    replaced: dict[int, str] = {}  # line number -> placeholder line
    dropped: set[int] = set()

    def put(node, text_):
        pad = " " * node.col_offset
        replaced[node.lineno] = (replaced[node.lineno] + "; " + text_) if node.lineno in replaced else pad + text_

    def header(node, text_, expr):
        put(node, text_)
        dropped.update(range(node.lineno + 1, expr.end_lineno + 1))

    def visit(statements):
        for s in statements:
            if isinstance(s, ast.If):
                elif_ = lines[s.lineno - 1].lstrip().startswith("elif")
                header(s, "elif None:" if elif_ else "if None:", s.test)
                visit(s.body)
                visit(s.orelse)
            elif isinstance(s, (ast.For, ast.AsyncFor)):
                header(s, f"for {ast.get_source_segment(text, s.target)} in None:", s.iter)
                visit(s.body)
                visit(s.orelse)
            elif isinstance(s, ast.While):
                header(s, "while None:", s.test)
                visit(s.body)
                visit(s.orelse)
            elif isinstance(s, (ast.With, ast.AsyncWith)):
                visit(s.body)
            elif isinstance(s, ast.Try):
                for part in (s.body, *(h.body for h in s.handlers), s.orelse, s.finalbody):
                    visit(part)
            elif _kept(s):
                continue
            else:
                put(s, _stub(s, text))
                dropped.update(range(s.lineno + 1, s.end_lineno + 1))

    visit(tree.body)
    out, stubs = [], []
    for number, line in enumerate(lines, start=1):
        if number in replaced:
            out.append(replaced[number])
            stubs.append(indent + replaced[number])
        elif number not in dropped:
            out.append(line)
    return [indent + line if line.strip() else line for line in out], stubs


def _kept(statement) -> bool:
    if isinstance(statement, (ast.Pass, ast.Break, ast.Continue, ast.Import, ast.ImportFrom, ast.Global,
                              ast.Nonlocal)):
        return True
    call = statement.value if isinstance(statement, ast.Expr) else None
    return isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "print"


def _stub(statement, text: str) -> str:
    if isinstance(statement, ast.Assign):
        return " = ".join(ast.get_source_segment(text, t) for t in statement.targets) + " = None"
    if isinstance(statement, (ast.AugAssign, ast.AnnAssign)):
        return f"{ast.get_source_segment(text, statement.target)} = None"
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return f"{statement.name} = None"
    if isinstance(statement, ast.Return):
        return "return None"
    return "None"


def _indent_of(text: str) -> str:
    indents = [re.match(r"[ \t]*", line).group(0) for line in text.splitlines() if line.strip()]
    return min(indents, key=len) if indents else ""


def solution_regions(source: str, where: str = "a cell") -> list[tuple[int, int]]:
    """(begin, end) line indices of each ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` pair."""
    regions, begin = [], None
    for k, line in enumerate(source.splitlines()):
        if BEGIN_SOLUTION in line:
            if begin is not None:
                raise ReleaseError(f"{where}: '{BEGIN_SOLUTION}' on line {k + 1} inside another solution "
                                   f"(opened on line {begin + 1}); close it with '{END_SOLUTION}' first.")
            begin = k
        elif END_SOLUTION in line:
            if begin is None:
                raise ReleaseError(f"{where}: '{END_SOLUTION}' on line {k + 1} without a '{BEGIN_SOLUTION}' before it.")
            regions.append((begin, k))
            begin = None
    if begin is not None:
        raise ReleaseError(f"{where}: '{BEGIN_SOLUTION}' on line {begin + 1} is never closed by '{END_SOLUTION}'.")
    return regions


def strip_solutions(source: str, where: str = "a cell") -> str:
    """``source`` with each solution region (markers included) replaced by its placeholder."""
    lines = source.splitlines()
    out, last = [], 0
    for begin, end in solution_regions(source, where):
        out += lines[last:begin]
        body = "\n".join(lines[begin + 1:end])
        if body.strip():
            out += placeholder(body).splitlines()
        last = end + 1
    return "\n".join(out + lines[last:])


def placeholder_stubs(source: str) -> list[str]:
    """The lines that a student version of ``source`` has in place of solution code (indented)."""
    lines = source.splitlines()
    stubs = []
    for begin, end in solution_regions(source):
        body = "\n".join(lines[begin + 1:end])
        if body.strip():
            stubs += _placeholder_lines(body)[1]
    return stubs


def student_version(reference) -> nbformat.NotebookNode:
    """A copy of ``reference`` with solutions replaced by placeholders and every output cleared.

    Raises ReleaseError when a cell's markers do not pair up or the reference has no solution.
    """
    nb = copy.deepcopy(reference)
    solved = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if BEGIN_SOLUTION in cell.source or END_SOLUTION in cell.source:
            cell.source = strip_solutions(cell.source, f"cell {index}")
            solved += 1
        cell.outputs = []
        cell.execution_count = None
        cell.metadata.pop("execution", None)
    if not solved:
        raise ReleaseError(f"the reference has no solution to remove: put each solution between "
                           f"'{BEGIN_SOLUTION}' and '{END_SOLUTION}' lines in its graded cell.")
    nb.metadata.pop("grading", None)
    return nb


def release(reference, folder) -> Path:
    """Write the student version of notebook ``reference`` into ``folder`` (same file name); its path."""
    reference = Path(reference)
    try:
        nb = student_version(read_notebook(reference))
    except ReleaseError as err:
        raise ReleaseError(f"{reference}: {err}") from None
    target = Path(folder) / reference.name
    if target.resolve() == reference.resolve():
        raise ReleaseError(f"{target}: the student version would overwrite the reference; choose another folder.")
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    return target
