"""The course's data stays out of git: no data files, and no course pictures inside notebooks."""
import subprocess
from pathlib import Path

import nbformat

from happyhouse import data
from tools.strip_pictures import PICTURES_TAG, strip_course_pictures

ROOT = Path(data.PROJECT_ROOT)


def tracked_files():
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return out.split()


def test_data_folders_hold_only_their_readme_in_git():
    for path in tracked_files():
        top = path.split("/")[0]
        if top in data.KINDS:
            assert path == f"{top}/README.md", f"{path}: course data must not be committed"


def test_no_course_file_is_committed_anywhere():
    course_names = {Path(rel).name for rel, _, _ in data.read_manifest()}
    leaked = [p for p in tracked_files() if Path(p).name in course_names]
    assert not leaked, f"course data files in git: {leaked}"


def test_committed_notebooks_carry_no_course_pictures():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if PICTURES_TAG in cell.metadata.get("tags", []):
                images = [k for o in cell.get("outputs", []) for k in o.get("data", {}) if k.startswith("image/")]
                assert not images, (f"{path.name}, cell {cell.get('id')}: shows the course's pictures; run "
                                    f"`python tools/strip_pictures.py {path.relative_to(ROOT)}`")


def test_strip_course_pictures_keeps_text_and_other_figures(tmp_path):
    picture = nbformat.v4.new_output("display_data", data={"image/png": "iVBOR", "text/plain": "<Figure>"})
    tagged = nbformat.v4.new_code_cell("plt.imshow(photo)", outputs=[picture], metadata={"tags": [PICTURES_TAG]})
    plot = nbformat.v4.new_code_cell("plt.plot(costs)", outputs=[nbformat.v4.new_output(
        "display_data", data={"image/png": "iVBOR", "text/plain": "<Figure>"})])
    path = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[tagged, plot]), path)
    assert strip_course_pictures(path) == 1
    cells = nbformat.read(path, as_version=4).cells
    assert dict(cells[0].outputs[0].data) == {"text/plain": "<Figure>"}
    assert "image/png" in cells[1].outputs[0].data
