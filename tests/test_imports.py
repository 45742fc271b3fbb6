"""The architecture's import rules: course modules -> happyhouse.* -> third-party libraries.

Nothing in ``happyhouse`` imports a top-level module; no import cycle; no private name imported
across modules; no project module imported under an alias; the shared base modules import only
each other; the door never imports grading, and face/style neither."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = ("fr_utils", "inception_blocks_v2", "nst_utils")
#: Shared by every subsystem; they import only each other.
BASE = ("happyhouse", "happyhouse.errors", "happyhouse.data", "happyhouse.image_io", "happyhouse.precision",
        "happyhouse.runtime")


def project_modules() -> dict[str, Path]:
    """Dotted module name -> file, for the top-level course modules and the happyhouse package."""
    modules = {name: ROOT / f"{name}.py" for name in TOP_LEVEL if (ROOT / f"{name}.py").is_file()}
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


def project_imports(path: Path, name: str, modules: dict[str, Path]):
    """(node, imported module, names taken from it, alias used) for each import of a project module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in {m.split(".")[0] for m in modules}:
                    yield node, alias.name, [], alias.asname
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] not in {m.split(".")[0] for m in modules}:
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in modules:  # a module taken from its package
                    yield node, full, [], alias.asname
                else:
                    yield node, base, [alias.name], alias.asname


def test_the_graph_sees_the_imports_it_must():
    graph = import_graph()
    assert {"happyhouse.door.face_db", "happyhouse.door.detect"} <= graph["happyhouse.door.cli"]
    assert {"happyhouse.grading.notebook", "happyhouse.grading.execute"} <= graph["happyhouse.grading.grader"]
    assert any(m.startswith("happyhouse.face") for m in graph["fr_utils"])
    assert any(m.startswith("happyhouse.style") for m in graph["nst_utils"])
    assert "happyhouse.door.cli" not in graph["fr_utils"]  # only in its __main__ block
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_happyhouse_never_imports_a_top_level_module():
    graph = import_graph()
    wrong = {name: sorted(graph[name] & set(TOP_LEVEL)) for name in graph if name.startswith("happyhouse")}
    assert not {k: v for k, v in wrong.items() if v}, "happyhouse must not import the course's modules"


def test_layers():
    graph = import_graph()
    for base in BASE:
        if base in graph:
            assert not graph[base] - set(BASE), f"{base} imports {sorted(graph[base] - set(BASE))}"
    for name in graph:
        if name.startswith(("happyhouse.face", "happyhouse.style")) or name in TOP_LEVEL:
            assert not {m for m in graph[name] if m.startswith(("happyhouse.door", "happyhouse.grading"))}, name
        if name.startswith("happyhouse.door"):
            assert not {m for m in graph[name] if m.startswith("happyhouse.grading")}, name


def test_no_private_name_is_imported_across_modules():
    modules = project_modules()
    found = [f"{path.relative_to(ROOT)}:{node.lineno} imports {taken} from {module}"
             for name, path in modules.items() for node, module, names, _ in project_imports(path, name, modules)
             for taken in names if taken.startswith("_") and module != name]
    assert not found, "\n".join(found)


def test_no_project_module_needs_an_alias():
    modules = project_modules()
    found = [f"{path.relative_to(ROOT)}:{node.lineno} imports {module} as {alias}"
             for name, path in modules.items() for node, module, names, alias in project_imports(path, name, modules)
             if alias and not names]
    assert not found, "\n".join(found)


def test_course_modules_stay_at_the_course_size():
    for name in TOP_LEVEL:
        lines = len((ROOT / f"{name}.py").read_text().splitlines())
        assert lines <= 300, f"{name}.py has {lines} lines: the engines belong in happyhouse/"


def test_importing_the_course_modules_leaves_the_door_and_grading_alone():
    code = ("import sys, fr_utils, nst_utils\n"
            "print(sorted(m for m in sys.modules if m.startswith(('happyhouse.door', 'happyhouse.grading'))))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
