"""What a student sees in the committed notebooks: imports of the course's modules only, no
TensorFlow log lines under the first cell, and no folder of the machine the outputs were made on."""
import ast
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: The course's modules, and what the course's notebooks imported besides them.
ALLOWED_IMPORTS = {"fr_utils", "inception_blocks_v2", "nst_utils", "numpy", "tensorflow", "keras", "matplotlib",
                   "scipy", "PIL", "imageio", "pprint", "os", "sys", "pathlib"}
#: An absolute path into a home, work or temporary folder (the before-stop hook's pattern, and /tmp).
MACHINE_PATH = re.compile(r"(^|[^A-Za-z0-9_.])/(work|home|root|tmp|Users)/[A-Za-z0-9_.-]+")


def code_cells(path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def imported_modules(source: str) -> set[str]:
    """Top-level module names a cell imports (IPython magics and shell lines dropped)."""
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_import_only_the_course_modules(path):
    found = set().union(*(imported_modules(c.source) for c in code_cells(path)))
    assert found <= ALLOWED_IMPORTS, f"{path.name} imports {sorted(found - ALLOWED_IMPORTS)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_committed_output_names_a_folder_of_the_machine(path):
    for cell in code_cells(path):
        for output in cell.get("outputs", []):
            text = output.get("text", "") + "".join(str(v) for k, v in output.get("data", {}).items()
                                                    if k.startswith("text/"))
            match = MACHINE_PATH.search(text)
            assert match is None, f"{path.name}, cell {cell.get('id')}: output names {match.group(0).strip()!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_first_cell_shows_no_tensorflow_log_lines(path, monkeypatch):
    """Run the first cell in a fresh kernel whose environment does not quieten TensorFlow (as on a
    student's laptop): it prints nothing at all."""
    from nbclient import NotebookClient

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)  # ipykernel stops forwarding fd 2 when it is set
    first = code_cells(path)[0]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(first.source)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    shown = [o.get("text", "") or str(o.get("data", "")) for o in nb.cells[0].outputs]
    assert shown == [], f"{path.name}'s first cell shows: {''.join(shown)[:500]}"
