"""The architecture's import rules: no import cycles between the project's modules, and the
course's fr_utils never imports the door (the door's command line imports fr_utils)."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = ("fr_utils", "inception_blocks_v2", "nst_utils", "nst_models")


def project_modules() -> dict[str, Path]:
    """Dotted module name -> file, for the top-level course modules and the happyhouse package."""
    modules = {name: ROOT / f"{name}.py" for name in TOP_LEVEL}
    for path in sorted((ROOT / "happyhouse").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules that ``name`` imports (at module level or in functions; not in the
    ``if __name__ == "__main__":`` block, which runs only when the module is the program)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def _walk(node):
    """ast.walk, skipping ``if __name__ == "__main__":`` blocks."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "__main__" in ast.unparse(child.test):
            continue
        yield child
        yield from _walk(child)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of module names (first == last), or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imported(name, path, modules) for name, path in modules.items()}


def test_the_graph_sees_the_imports_it_must():
    graph = import_graph()
    assert {"fr_utils", "happyhouse.door.db", "happyhouse.door.detect"} <= graph["happyhouse.door.cli"]
    assert "happyhouse.data" in graph["fr_utils"]
    assert {"happyhouse.grading.notebook", "happyhouse.grading.execute"} <= graph["happyhouse.grading.grader"]
    assert "happyhouse.door.cli" not in graph["fr_utils"]  # only in its __main__ block
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_layers():
    graph = import_graph()
    for base in ("happyhouse.data", "happyhouse.image_io", "happyhouse.precision"):
        assert not graph[base] - {"happyhouse.data", "happyhouse.image_io", "happyhouse.precision"}, base
    for name in ("fr_utils", "nst_utils", "nst_models", "inception_blocks_v2"):
        assert not {m for m in graph[name] if m.startswith(("happyhouse.door", "happyhouse.grading"))}, name
    assert not any(m.startswith("happyhouse.grading") for name in graph if name.startswith("happyhouse.door")
                   for m in graph[name])


def test_importing_the_course_modules_leaves_the_door_and_grading_alone():
    code = ("import sys, fr_utils\n"
            "print(sorted(m for m in sys.modules if m.startswith(('happyhouse.door', 'happyhouse.grading'))))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
