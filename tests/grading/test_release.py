"""Student versions (release), and grading them: placeholders, borrowed implementations, dependencies."""
import copy
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from happyhouse.grading import assignment, release
from happyhouse.grading.cli import main
from happyhouse.grading.grader import grade_class
from happyhouse.grading.notebook import Options

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = {"Face_Recognition.ipynb": {"triplet_loss", "verify", "who_is_it"},
             "Neural_Style_Transfer.ipynb": {"compute_content_cost", "gram_matrix", "compute_layer_style_cost",
                                             "compute_style_cost", "total_cost", "model_nn"}}


# ----------------------------------------------------------------------------- placeholders

def test_placeholder_follows_the_course():
    solution = '''
    # Step 1: the encoding (≈ 1 line)
    encoding = img_to_encoding(image_path, model)
    m, n_H, n_W, n_C = a_G.get_shape().as_list()
    for (name, db_enc) in database.items():
        dist = np.linalg.norm(encoding -
                              db_enc)
        if dist < min_dist:
            min_dist = dist
        elif dist > 3:
            continue
        else:
            print("far: " + name)
    model["input"].assign(input_image)
    total += 1
    return total'''
    assert release.placeholder(solution).splitlines() == [
        "",
        "    # Step 1: the encoding (≈ 1 line)",
        "    encoding = None",
        "    m, n_H, n_W, n_C = None",
        "    for (name, db_enc) in None:",
        "        dist = None",
        "        if None:",
        "            min_dist = None",
        "        elif None:",
        "            continue",
        "        else:",
        '            print("far: " + name)',
        "    None",
        "    total = None",
        "    return None"]


def test_unbalanced_or_missing_markers_are_named():
    with pytest.raises(release.ReleaseError, match="line 2 is never closed"):
        release.strip_solutions("def f():\n    ### BEGIN SOLUTION\n    return 1\n", "cell 3")
    with pytest.raises(release.ReleaseError, match="cell 3: '### END SOLUTION' on line 1 without"):
        release.strip_solutions("### END SOLUTION\n", "cell 3")
    with pytest.raises(release.ReleaseError, match="inside another solution"):
        release.strip_solutions("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n")
    with pytest.raises(release.ReleaseError, match="no solution to remove"):
        release.student_version(new_notebook(cells=[new_code_cell("x = 1")]))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_release_of_the_course_notebooks(name):
    reference = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    student = release.student_version(reference)
    assert [c.get("id") for c in student.cells] == [c.get("id") for c in reference.cells]
    assert [c.metadata.get("tags") for c in student.cells] == [c.metadata.get("tags") for c in reference.cells]
    markdown = [c.source for c in reference.cells if c.cell_type == "markdown"]
    assert [c.source for c in student.cells if c.cell_type == "markdown"] == markdown
    assert sum("**Expected Output**" in text for text in markdown) >= len(NOTEBOOKS[name])
    graded = {}
    for ref, out in zip(reference.cells, student.cells):
        if out.cell_type == "code":
            assert out.outputs == [] and out.execution_count is None
        assert release.BEGIN_SOLUTION not in out.source and release.END_SOLUTION not in out.source
        if release.graded_function(ref.source):
            graded[release.graded_function(ref.source)] = out
            hints = [line for line in ref.source.splitlines() if "CODE HERE" in line or line.strip().startswith("#")]
            kept = [line for line in out.source.splitlines() if "CODE HERE" in line or line.strip().startswith("#")]
            assert kept == [h for h in hints if "SOLUTION" not in h]  # every hint and comment stays
            assert f"def {release.graded_function(ref.source)}(" in out.source
            assert "= None" in out.source or "\n        None\n" in out.source
            compile(out.source, "student", "exec")  # the student's cell still runs
        elif out.cell_type == "code":
            assert out.source == ref.source
    assert set(graded) == NOTEBOOKS[name]


def test_release_command_writes_the_student_version(tmp_path):
    command = [sys.executable, "-m", "happyhouse.grading", "release", str(ROOT / "notebooks" / "Face_Recognition.ipynb"),
               "-o", str(tmp_path / "handout")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    student = nbformat.read(tmp_path / "handout" / "Face_Recognition.ipynb", as_version=4)
    triplet = next(c for c in student.cells if release.graded_function(c.source) == "triplet_loss")
    assert "    pos_dist = None\n" in triplet.source and "tf.reduce_sum" not in triplet.source
    assert "3 graded functions (triplet_loss, verify, who_is_it)" in done.stdout


def test_release_refuses_what_it_cannot_release(tmp_path, capsys):
    (tmp_path / "bad.ipynb").write_text("{not json")
    assert main(["release", str(tmp_path / "bad.ipynb"), "-o", str(tmp_path / "out")]) == 2
    assert "bad.ipynb: not a notebook" in capsys.readouterr().err
    student = release.student_version(nbformat.read(ROOT / "notebooks" / "Face_Recognition.ipynb", as_version=4))
    nbformat.write(student, tmp_path / "student.ipynb")
    assert main(["release", str(tmp_path / "student.ipynb"), "-o", str(tmp_path / "out")]) == 2
    assert "student.ipynb: the reference has no solution" in capsys.readouterr().err
    (tmp_path / "ref").mkdir()
    shutil.copy(ROOT / "notebooks" / "Face_Recognition.ipynb", tmp_path / "ref")
    assert main(["release", str(tmp_path / "ref" / "Face_Recognition.ipynb"), "-o", str(tmp_path / "ref")]) == 2
    assert "would overwrite the reference" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_workspace_is_never_written_into_the_project_it_copies(tmp_path, capsys):
    """release -o . (the project) or -o happyhouse/x once half-wrote, then failed with a traceback or
    copied the package into itself: refused before anything is written."""
    reference = str(ROOT / "notebooks" / "Face_Recognition.ipynb")
    for folder in (ROOT, ROOT / "happyhouse" / "handout", ROOT / "images" / "x"):
        assert main(["release", reference, "-o", str(folder)]) == 2
        err = capsys.readouterr().err
        assert "would copy the project" in err and "Traceback" not in err
        assert not (folder / "Face_Recognition.ipynb").exists() and not (ROOT / "happyhouse" / "handout").exists()


def test_outputs_in_folders_still_to_make_are_written(tmp_path, capsys):
    """check_file allows a folder that can be made: the command makes it (the --html once failed after
    the work, exit 2)."""
    a = str(ROOT / "notebooks" / "Face_Recognition.ipynb")
    page = tmp_path / "new" / "deeper" / "diff.html"
    assert main(["diff", a, a, "--html", str(page), "--outputs-only"]) == 0
    assert page.is_file() and "The notebooks' outputs are the same." in capsys.readouterr().out


def test_outputs_that_cannot_be_written_fail_before_the_work(tmp_path, capsys):
    """Every command's output is checked first: one line naming it, exit 2, nothing graded or run."""
    reference = str(ROOT / "notebooks" / "Face_Recognition.ipynb")
    (tmp_path / "notes.txt").write_text("kept")
    blocked = str(tmp_path / "notes.txt" / "out")
    for argv in (["release", reference, "-o", blocked], ["execute", reference, "-o", blocked + ".ipynb"],
                 ["grade", reference, "--reference", reference, "--json", blocked + ".json"],
                 ["class", str(tmp_path), "--reference", reference, "--out", blocked],
                 ["diff", reference, reference, "--html", blocked + ".html"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "notes.txt is a file, not a folder" in err and "Traceback" not in err
    assert (tmp_path / "notes.txt").read_text() == "kept"


# ----------------------------------------------------------------------------- a small assignment

SQUARE = '''# GRADED FUNCTION: square

def square(x):
    ### START CODE HERE ### (≈ 1 line)
    ### BEGIN SOLUTION
    y = x * x
    ### END SOLUTION
    ### END CODE HERE ###
    return y'''

SUM_OF_SQUARES = '''# GRADED FUNCTION: sum_of_squares

def sum_of_squares(xs):
    total = 0
    for x in xs:
        ### START CODE HERE ### (≈ 1 line)
        ### BEGIN SOLUTION
        total = total + square(x)
        ### END SOLUTION
        ### END CODE HERE ###
    return total'''

TOTAL_COST = '''# GRADED FUNCTION: total_cost

def total_cost(J_content, J_style, alpha = 10, beta = 40):
    ### START CODE HERE ### (≈1 line)
    ### BEGIN SOLUTION
    J = alpha * J_content + beta * J_style
    ### END SOLUTION
    ### END CODE HERE ###
    return J'''


def _cell(source, exercise=None, printed=None):
    cell = new_code_cell(source)
    if exercise:
        cell.metadata["tags"] = [f"exercise:{exercise}"]
    if printed:
        cell.outputs = [new_output("stream", name="stdout", text=printed)]
    return cell


def small_reference():
    """Three graded functions (sum_of_squares calls square), each with its test; outputs recorded."""
    return new_notebook(cells=[
        new_markdown_cell("# A small assignment"),
        _cell(SQUARE, "square"),
        _cell('print("square(3) =", square(3))', "square", "square(3) = 9\n"),
        new_markdown_cell("**Expected Output**: square(3) = 9"),
        _cell(SUM_OF_SQUARES, "sum_of_squares"),
        _cell('print("sum =", sum_of_squares([1, 2, 3]))', "sum_of_squares", "sum = 14\n"),
        _cell(TOTAL_COST, "total_cost"),
        _cell('print("J =", total_cost(1.5, 0.25))', "total_cost", "J = 25.0\n"),
    ])


def _filled(student, replacements: dict):
    """``student`` with text replaced in its cells, as a student would edit them."""
    nb = copy.deepcopy(student)
    for cell in nb.cells:
        for old, new in replacements.items():
            cell.source = cell.source.replace(old, new)
    return nb


@pytest.fixture(scope="module")
def graded_small_class(tmp_path_factory):
    """Grade a fresh release, the solved reference, one wrong function and one borrowed, in one class."""
    folder = tmp_path_factory.mktemp("small")
    reference = small_reference()
    nbformat.write(reference, folder / "reference.ipynb")
    released = release.release(folder / "reference.ipynb", folder / "class")
    student = nbformat.read(released, as_version=4)
    released.rename(folder / "class" / "fresh.ipynb")
    solved = {"    y = None": "    y = x * x", "        total = None": "        total = total + square(x)",
              "    J = None": "    J = alpha * J_content + beta * J_style"}
    nbformat.write(_filled(student, solved), folder / "class" / "solved.ipynb")
    nbformat.write(_filled(student, {**solved, "    y = x * x": "    y = x + x"}), folder / "class" / "wrong.ipynb")
    borrowed = _filled(student, solved)
    borrowed.cells[6].source = "# GRADED FUNCTION: total_cost\n\nfrom happyhouse.grading.release import placeholder as total_cost"
    nbformat.write(borrowed, folder / "class" / "borrowed.ipynb")
    reports = grade_class(folder / "class", folder / "reference.ipynb", Options(cell_timeout=60, notebook_timeout=300),
                          workers=2, out=folder / "results", progress=False)
    return {Path(r["submission"]).stem: r for r in reports}


def _verdicts(report):
    return {e["exercise"]: (e["verdict"], e["reason"], e.get("depends_on", [])) for e in report["exercises"]}


def test_a_fresh_release_scores_zero_and_says_not_implemented(graded_small_class):
    report = graded_small_class["fresh"]
    assert report["status"] == "graded" and (report["passed"], report["total"]) == (0, 3)
    for exercise, (verdict, reason, _) in _verdicts(report).items():
        assert verdict in ("fail", "error") and "not implemented" in reason, (exercise, reason)
    assert "`y = None`" in _verdicts(report)["square"][1]


def test_the_solved_assignment_scores_full_marks(graded_small_class):
    report = graded_small_class["solved"]
    assert (report["passed"], report["total"]) == (3, 3), _verdicts(report)


def test_one_wrong_function_fails_itself_and_its_dependents_only(graded_small_class):
    verdicts = _verdicts(graded_small_class["wrong"])
    assert verdicts["square"][0] == "fail" and "expected 9, got 6" in verdicts["square"][1]
    assert "not implemented" not in verdicts["square"][1]
    assert verdicts["sum_of_squares"][0] == "fail" and verdicts["sum_of_squares"][2] == ["square"]
    assert verdicts["sum_of_squares"][1].startswith("depends on square, which did not pass")
    assert verdicts["total_cost"][0] == "pass"


def test_a_borrowed_implementation_fails(graded_small_class):
    verdicts = _verdicts(graded_small_class["borrowed"])
    assert verdicts["total_cost"][0] == "fail"
    assert verdicts["total_cost"][1].startswith("uses the project's implementation")
    assert verdicts["square"][0] == verdicts["sum_of_squares"][0] == "pass"


# ----------------------------------------------------------------------------- borrowing, read from the source

def _notebook(*sources):
    return new_notebook(cells=[new_code_cell(s) for s in sources])


DEF = "# GRADED FUNCTION: gram_matrix\ndef gram_matrix(A):\n    return A @ A.T"


@pytest.mark.parametrize("cells, how", [
    (["import nst_utils", "# GRADED FUNCTION: gram_matrix\nfrom nst_utils import gram_matrix"], "from nst_utils import gram_matrix"),
    (["from nst_utils import gram_matrix as g", DEF], "from nst_utils import gram_matrix"),
    (["import nst_utils as nu", "# GRADED FUNCTION: gram_matrix\ngram_matrix = nu.gram_matrix"], "from nu"),
    (["import nst_utils as nu", "# GRADED FUNCTION: gram_matrix\ngram_matrix = getattr(nu, 'gram_' + 'matrix')"], "assigns gram_matrix from nu"),
    (["import nst_utils", DEF, "print(nst_utils.gram_matrix(x))"], "cell 2 reads `nst_utils.gram_matrix`"),
])
def test_borrowing_is_found(cells, how):
    nb = _notebook(*cells)
    index = next(i for i, c in enumerate(nb.cells) if "GRADED FUNCTION" in c.source)
    found = assignment.borrowed(nb, "gram_matrix", index, assignment.project_modules())
    assert found is not None and how in found


@pytest.mark.parametrize("cells", [
    ["from nst_utils import *", DEF],                          # a star import before the def: the def wins
    ["from fr_utils import *", DEF, "from fr_utils import *"],  # fr_utils has no gram_matrix
    [DEF, "from nst_utils import *"],                          # nor has nst_utils: the def stays
    ["import nst_utils", DEF, "nst_utils.load_image('monet.jpg')", "%matplotlib inline\nG = gram_matrix(x)"],
    ["from nst_utils import STYLE_LAYERS, gram_matrix_of_mine", DEF.replace("A @ A.T", "helper(A)")],
])
def test_the_students_own_code_is_not_borrowing(cells):
    nb = _notebook(*cells)
    index = next(i for i, c in enumerate(nb.cells) if "GRADED FUNCTION" in c.source)
    assert assignment.borrowed(nb, "gram_matrix", index, assignment.project_modules()) is None


def test_nbgraders_stub_reads_as_not_implemented():
    """A release made by nbgrader (its stub raises NotImplementedError) is reported the same way."""
    from happyhouse.grading.compare import judge, reference_spec

    reference = small_reference()
    spec = reference_spec(reference, "reference", Options())
    spec["functions"] = assignment.function_specs(reference)
    executed = copy.deepcopy(reference)
    executed.cells[1].source = SQUARE.split("    ### BEGIN")[0] + "    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    executed.cells[2].outputs = [new_output("error", ename="NotImplementedError", evalue="", traceback=[])]
    executed.metadata["grading"] = {"finished": True, "cells": {str(i): {"status": "error" if i == 2 else "ok"}
                                                                for i, c in enumerate(executed.cells) if c.cell_type == "code"}}
    verdicts = {r["exercise"]: r for r in assignment.review(judge(executed, spec), executed, spec)}
    assert verdicts["square"]["verdict"] == "error"
    assert verdicts["square"]["reason"].startswith("not implemented: cell 1 still has the placeholder `raise NotImplementedError()`")
    assert verdicts["sum_of_squares"]["verdict"] == "pass" and verdicts["sum_of_squares"]["depends_on"] == []


def test_a_handout_carries_the_data_folders_readme_not_their_data(tmp_path):
    from happyhouse.grading.workspace import write_workspace
    project = tmp_path / "project"
    shutil.copytree(ROOT / "happyhouse", project / "happyhouse")
    (project / "images").mkdir()
    (project / "images" / "README.md").write_text("where the images come from")
    (project / "images" / "louvre.jpg").write_bytes(b"course picture")
    handout = write_workspace(tmp_path / "handout", project, data=False)
    assert (handout / "images" / "README.md").is_file() and not (handout / "images" / "louvre.jpg").exists()
    grading = write_workspace(tmp_path / "grading", project)
    assert (grading / "images" / "louvre.jpg").read_bytes() == b"course picture"


def test_workdir_is_refused_where_the_sandbox_ignores_it(tmp_path, capsys):
    reference = str(ROOT / "notebooks" / "Face_Recognition.ipynb")
    assert main(["grade", reference, "--reference", reference, "--workdir", str(tmp_path)]) == 2
    assert "--workdir sets the kernel's folder only with --no-sandbox" in capsys.readouterr().err
