"""Tests of happyhouse.grading: a reference notebook and six submissions built here, graded serially,
in parallel (the command line) and on a local Dask cluster, with exactly the verdicts expected.

Every notebook is small (numpy only) so that a run costs about a kernel start; executions are
shared between tests through module-scoped fixtures.
"""
import csv
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from happyhouse import grading

ROOT = Path(__file__).resolve().parents[2]
CELL_TIMEOUT = 5          # the looping submission is interrupted after this many seconds
NOTEBOOK_TIMEOUT = 120    # generous: kernels start slowly on a busy machine

TRIPLET = """def triplet_loss(y_pred, alpha=0.2):
    anchor, positive, negative = y_pred
    pos_dist = np.sum((anchor - positive) ** 2, axis=-1)
    neg_dist = np.sum((anchor - negative) ** 2, axis=-1)
    return np.sum(np.maximum(pos_dist - neg_dist + alpha, 0.0))"""
GRAM = "def gram_matrix(A):\n    return A @ A.T"

SUBMISSIONS = {  # name -> (triplet_loss source, gram_matrix source)
    "correct": (TRIPLET, GRAM),
    "wrong_triplet": (TRIPLET.replace("np.maximum(pos_dist - neg_dist + alpha, 0.0)", "pos_dist - neg_dist + alpha"), GRAM),
    "raises": (TRIPLET, "def gram_matrix(A):\n    raise NotImplementedError('not written yet')"),
    "loops": (TRIPLET.replace("    anchor,", "    while True:\n        pass\n    anchor,"), GRAM),
    "tiny_float": (TRIPLET.replace("0.0))", "0.0)) * (1 + 1e-9)"), GRAM),
    "crash": (TRIPLET, "import os\ndef gram_matrix(A):\n    os._exit(1)  # the kernel dies"),
}
PASS3 = {"triplet_loss": "pass", "gram_matrix": "pass", "verify": "pass"}
EXPECTED = {
    "correct": PASS3,
    "wrong_triplet": {**PASS3, "triplet_loss": "fail"},
    "raises": {**PASS3, "gram_matrix": "error"},
    "loops": {**PASS3, "triplet_loss": "timeout"},
    "tiny_float": PASS3,
    "crash": {**PASS3, "gram_matrix": "error", "verify": "not-run"},
    "not_a_notebook": None,  # status "error", nothing graded
}


def course_notebook(triplet=TRIPLET, gram=GRAM):
    """A small notebook in the course's shape: helpers, then one tagged test cell per exercise."""
    cells = [
        new_markdown_cell("# Grading test notebook"),
        new_code_cell("import numpy as np\nfrom happyhouse import data  # the project is importable from any folder"),
        new_code_cell(triplet),
        new_code_cell("rng = np.random.default_rng(1)\n"
                      "y_pred = (rng.normal(6, 0.1, (3, 128)), rng.normal(1, 1, (3, 128)), rng.normal(3, 4, (3, 128)))\n"
                      'print("loss =", triplet_loss(y_pred))', metadata={"tags": ["exercise:triplet_loss"]}),
        new_code_cell(gram),
        new_code_cell('A = np.arange(6.0).reshape(2, 3) / 7\nprint("GA =", gram_matrix(A))',
                      metadata={"tags": ["exercise:gram_matrix"]}),
        new_code_cell("def verify(dist, threshold=0.7):\n"
                      "    door_open = bool(dist < threshold)\n"
                      "    print(\"It's younes, welcome home!\" if door_open else \"It's not younes, please go away\")\n"
                      "    return round(dist, 6), door_open\n"
                      "verify(float(np.linalg.norm(A[0] - A[1])) / 3)", metadata={"tags": ["exercise:verify"]}),
    ]
    for index, cell in enumerate(cells):
        cell.id = f"cell-{index}"  # students' copies keep the released notebook's cell ids
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}})


def options(**changes):
    return grading.Options(**{"cell_timeout": CELL_TIMEOUT, "notebook_timeout": NOTEBOOK_TIMEOUT, **changes})


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A folder with ``reference.ipynb`` (executed, with outputs) and ``class/`` of submissions."""
    root = tmp_path_factory.mktemp("grading")
    nbformat.write(course_notebook(), root / "reference_source.ipynb")
    grading.execute_notebook(root / "reference_source.ipynb", root / "reference.ipynb", 60, root)
    submissions = root / "class"
    submissions.mkdir()
    for name, (triplet, gram) in SUBMISSIONS.items():
        nbformat.write(course_notebook(triplet, gram), submissions / f"{name}.ipynb")  # no outputs
    (submissions / "not_a_notebook.ipynb").write_text("Dear professor, here is my homework.")
    return root


@pytest.fixture(scope="module")
def serial(work):
    return grading.grade_class(work / "class", work / "reference.ipynb", options(), workers=1,
                               out=work / "serial", progress=False)


@pytest.fixture(scope="module")
def parallel(work):
    """The command line, two notebooks at a time; returns its JSON reports and the process result."""
    out = work / "parallel"
    result = subprocess.run(
        [sys.executable, "-m", "happyhouse.grading", "class", str(work / "class"), "--reference", str(work / "reference.ipynb"),
         "--workers", "2", "--timeout", str(CELL_TIMEOUT), "--notebook-timeout", str(NOTEBOOK_TIMEOUT),
         "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    reports = [json.loads(p.read_text()) for p in sorted((out / "reports").glob("*.json"))]
    return reports, result


@pytest.fixture(scope="module")
def dask(work):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        return grading.grade_class(work / "class", work / "reference.ipynb", options(),
                                   scheduler=cluster.scheduler_address, progress=False)


def verdicts(reports):
    by_name = {}
    for r in reports:
        name = Path(r["submission"]).stem
        by_name[name] = None if r["status"] == "error" else {e["exercise"]: e["verdict"] for e in r["exercises"]}
    return by_name


@pytest.mark.parametrize("mode", ["serial", "parallel", "dask"])
def test_every_submission_gets_exactly_its_verdicts(mode, request):
    reports = request.getfixturevalue(mode)
    reports, log = (reports[0], reports[1].stderr[-3000:]) if mode == "parallel" else (reports, "")
    details = log + "\n".join(f"{r['submission']}: {r['error'] or [(e['exercise'], e['verdict'], e['reason']) for e in r['exercises']]}"
                        for r in reports)
    assert verdicts(reports) == EXPECTED, details


def test_the_command_line_reports_progress_and_failures(parallel, work):
    reports, result = parallel
    assert result.returncode == grading.EXIT_FAIL, result.stderr
    assert "grading" in result.stderr and "7/7" in result.stderr  # the tqdm bar
    assert "wrong_triplet.ipynb: 2/3  triplet_loss=fail" in result.stdout


def test_scores_csv_has_one_row_per_submission_and_a_column_per_exercise(serial, work):
    rows = list(csv.DictReader(open(work / "serial" / "scores.csv")))
    assert [r["submission"] for r in rows] == sorted(f"{n}.ipynb" for n in EXPECTED)
    for row in rows:
        expected = EXPECTED[Path(row["submission"]).stem] or {}
        for exercise in PASS3:
            assert row[exercise] == ("1" if expected.get(exercise) == "pass" else "0")
    by_name = {r["submission"]: r for r in rows}
    assert by_name["not_a_notebook.ipynb"]["status"] == "error"
    assert by_name["wrong_triplet.ipynb"]["score"] == str(round(2 / 3, 4))
    assert (work / "serial" / "pass_rates.png").stat().st_size > 0
    assert (work / "serial" / "executed" / "correct.ipynb").is_file()
    # this small reference has no hidden tests: every row says its verdicts are the weaker kind
    assert {r["hidden_tests"] for r in rows} == {"NO (printed outputs only)"}


def test_a_failure_shows_expected_and_got(serial, work):
    report = next(r for r in serial if r["submission"] == "wrong_triplet.ipynb")
    triplet = next(e for e in report["exercises"] if e["exercise"] == "triplet_loss")
    reference = nbformat.read(work / "reference.ipynb", as_version=4)
    assert triplet["expected"] == grading.output_text(reference.cells[3])
    assert triplet["got"].startswith("loss = ") and triplet["got"] != triplet["expected"]
    expected_number = triplet["expected"].split()[-1]
    assert f"expected {expected_number}, got {triplet['got'].split()[-1]}" in triplet["reason"]
    table = grading.format_table(report)
    assert "FAIL" in table and "2/3 exercises passed" in table


def test_tiny_float_differences_pass_only_within_tolerance(serial, work):
    report = next(r for r in serial if r["submission"] == "tiny_float.ipynb")
    triplet = next(e for e in report["exercises"] if e["exercise"] == "triplet_loss")
    assert triplet["got"] != triplet["expected"]  # the text differs, the tolerance accepted it
    assert grading.compare_text(triplet["expected"], triplet["got"], rtol=1e-12, atol=0) is not None


def test_error_timeout_and_crash_say_what_happened(serial):
    reasons = {(Path(r["submission"]).stem, e["exercise"]): e["reason"] for r in serial for e in r["exercises"]}
    assert "NotImplementedError: not written yet" in reasons["raises", "gram_matrix"]
    assert "timeout" in reasons["loops", "triplet_loss"] or "ran longer" in reasons["loops", "triplet_loss"]
    assert "kernel died" in reasons["crash", "gram_matrix"]


def test_not_a_notebook_is_a_clear_error(serial):
    report = next(r for r in serial if r["submission"] == "not_a_notebook.ipynb")
    assert "not_a_notebook.ipynb: not a notebook" in report["error"] and "not valid JSON" in report["error"]


def test_grade_command_exit_codes_and_json(work, tmp_path):
    base = [sys.executable, "-m", "happyhouse.grading", "grade"]
    ref = ["--reference", str(work / "reference.ipynb"), "--timeout", str(CELL_TIMEOUT)]
    good = subprocess.run(base + [str(work / "class" / "correct.ipynb"), *ref, "--json", str(tmp_path / "new" / "r.json"),
                                  "--executed", str(tmp_path / "new" / "executed" / "c.ipynb")],   # folders made
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert good.returncode == grading.EXIT_PASS, good.stdout + good.stderr
    assert "3/3 exercises passed" in good.stdout and (tmp_path / "new" / "executed" / "c.ipynb").is_file()
    report = json.loads((tmp_path / "new" / "r.json").read_text())
    assert [e["verdict"] for e in report["exercises"]] == ["pass"] * 3
    assert report["hidden_tests"] is False and "WITHOUT hidden tests" in report["warning"]
    assert "WARNING: graded WITHOUT hidden tests" in good.stdout
    typo = subprocess.run(base + [str(work / "class" / "correct.ipynb"), *ref, "--hidden-tests", str(tmp_path / "typo.py")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert typo.returncode == grading.EXIT_ERROR and "typo.py: no such file" in typo.stderr
    bad = subprocess.run(base + [str(work / "class" / "not_a_notebook.ipynb"), *ref],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert bad.returncode == grading.EXIT_ERROR and "not a notebook" in bad.stdout
    missing = subprocess.run(base + [str(tmp_path / "nowhere.ipynb"), *ref], cwd=ROOT, capture_output=True, text=True)
    assert missing.returncode == grading.EXIT_ERROR and "no such file" in missing.stderr


def test_exit_code_summarises_reports(serial):
    by_name = {Path(r["submission"]).stem: r for r in serial}
    assert grading.exit_code([by_name["correct"], by_name["tiny_float"]]) == grading.EXIT_PASS
    assert grading.exit_code([by_name["correct"], by_name["wrong_triplet"]]) == grading.EXIT_FAIL
    assert grading.exit_code([by_name["correct"], by_name["not_a_notebook"]]) == grading.EXIT_ERROR


def test_a_notebook_that_ignores_interrupts_is_killed_with_its_kernel(work, tmp_path):
    import psutil

    looping = course_notebook("import time\ndef triplet_loss(y_pred):\n    while True:\n        try:\n"
                              "            time.sleep(0.2)\n        except KeyboardInterrupt:\n            pass")
    nbformat.write(looping, tmp_path / "stubborn.ipynb")
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    report = grading.grade(tmp_path / "stubborn.ipynb", work / "reference.ipynb",
                           options(cell_timeout=2, notebook_timeout=15))
    assert {e["exercise"]: e["verdict"] for e in report["exercises"]} == {
        "triplet_loss": "timeout", "gram_matrix": "not-run", "verify": "not-run"}
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before  # no kernel left behind


def test_the_kernel_imports_the_project_from_another_folder(serial, work):
    executed = nbformat.read(work / "serial" / "executed" / "correct.ipynb", as_version=4)
    assert executed.cells[1].outputs == []  # `from happyhouse import data` ran in a tmp folder without error
    assert executed.metadata["grading"]["cells"]["1"]["status"] == "ok"


def test_an_exercise_calling_project_code_with_an_executed_reference(tmp_path):
    """The reference imports the course's module (TensorFlow) and has no outputs: --execute-reference."""
    pytest.importorskip("tensorflow")
    solution = ("def triplet_loss(y_true, y_pred, alpha=0.2):\n"
                "    a, p, n = (tf.constant(y, tf.float32) for y in y_pred)\n"
                "    gap = tf.reduce_sum(tf.square(a - p), -1) - tf.reduce_sum(tf.square(a - n), -1)\n"
                "    return tf.reduce_sum(tf.maximum(gap + alpha, 0.0))")
    cells = [new_code_cell("import numpy as np\nimport fr_utils\nimport tensorflow as tf"),
             new_code_cell(solution),
             new_code_cell("rng = np.random.default_rng(1)\n"
                           "y_pred = [rng.normal(m, s, (3, 128)) for m, s in ((6, 0.1), (1, 1), (3, 4))]\n"
                           'print("loss =", float(triplet_loss(None, y_pred)))',
                           metadata={"tags": ["exercise:triplet_loss"]})]
    nbformat.write(new_notebook(cells=cells), tmp_path / "reference.ipynb")
    wrong = new_notebook(cells=[cells[0], new_code_cell(
        "def triplet_loss(y_true, y_pred, alpha=0.2):\n    return 0.0"), cells[2]])
    nbformat.write(wrong, tmp_path / "wrong.ipynb")
    report = grading.grade(tmp_path / "wrong.ipynb", tmp_path / "reference.ipynb", options(cell_timeout=120),
                           execute_reference=True)
    (triplet,) = report["exercises"]
    assert triplet["verdict"] == "fail" and triplet["got"] == "loss = 0.0\n"
    assert float(triplet["expected"].split()[-1]) > 100  # the executed reference computed the loss


def test_a_fresh_copy_of_the_face_recognition_notebook_passes_every_exercise(course_images, tmp_path):
    """The real notebook as reference: a student's copy without outputs passes all its exercises."""
    reference = ROOT / "notebooks" / "Face_Recognition.ipynb"
    if not reference.is_file():
        pytest.skip("notebooks/Face_Recognition.ipynb is not written yet")
    student = nbformat.read(reference, as_version=4)
    for cell in student.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(student, tmp_path / "student.ipynb")
    report = grading.grade(tmp_path / "student.ipynb", reference, grading.Options(cell_timeout=600, notebook_timeout=900))
    assert report["status"] == "graded", report["error"]
    assert report["total"] >= 3 and report["passed"] == report["total"], grading.format_table(report)


# ----------------------------------------------------------------------------- diff

def test_diff_shows_changed_source_and_output_in_terminal_and_html(serial, work, tmp_path):
    a, b = work / "reference.ipynb", work / "serial" / "executed" / "wrong_triplet.ipynb"
    text = grading.diff_text(a, b)
    reference_loss = grading.output_text(nbformat.read(a, as_version=4).cells[3]).split()[-1]
    wrong_loss = grading.output_text(nbformat.read(b, as_version=4).cells[3]).split()[-1]
    assert reference_loss in text and wrong_loss in text and "np.maximum" in text
    assert grading.diff_text(a, a) == ""
    page = tmp_path / "diff.html"
    changed = grading.diff_html(a, b, page)
    assert changed == 2  # the triplet_loss source cell and its test cell
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and reference_loss in html and wrong_loss in html

    result = subprocess.run([sys.executable, "-m", "happyhouse.grading", "diff", str(a), str(b), "--outputs-only",
                             "--html", str(tmp_path / "outputs.html")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == grading.EXIT_FAIL and wrong_loss in result.stdout
    assert "np.maximum" not in result.stdout and (tmp_path / "outputs.html").is_file()


# ----------------------------------------------------------------------------- no kernel needed

@pytest.mark.parametrize("expected, got, same", [
    ("loss = 528.143\n", "loss = 528.1430001\n", True),
    ("loss = 528.143\n", "loss = 528.2\n", False),
    ("J = 1.5e-05\n", "J = 1.5000001E-05\n", True),
    ("[[ 1.  -2.5]\n [ 0.   3. ]]\n", "[[1.0000001 -2.5]\n [0. 3.]]\n", True),
    ("(0.659, True)\n", "(0.659, False)\n", False),
    ("shape (1, 128)\n", "shape (1, 129)\n", False),           # integers exactly
    ("It's younes, welcome home!\n", "It's younes, welcome home\n", False),
    ("tf.Tensor(3.5, shape=(), dtype=float32)\n", "tf.Tensor(3.5, shape=(), dtype=float64)\n", False),
    ("x = nan\n", "x = nan\n", True),
    ("a = 1\nb = 2\n", "a = 1\n", False),
])
def test_compare_text(expected, got, same):
    assert (grading.compare_text(expected, got, rtol=1e-4, atol=1e-6) is None) == same


def test_cells_are_matched_by_tag_else_by_the_reference_cell_id():
    reference = course_notebook()
    for cell in reference.cells[1:]:
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="7\n")]
    spec = grading.reference_spec(reference, "ref", grading.Options())
    submission = nbformat.reads(nbformat.writes(reference), as_version=4)
    submission.cells[3].metadata.tags = []          # tag removed: found by its id
    submission.cells[5].metadata.tags = []
    submission.cells[5].id = "renamed"              # tag and id gone: missing
    submission.metadata["grading"] = {"cells": {str(i): {"status": "ok"} for i in range(len(submission.cells))}}
    got = {r["exercise"]: r["verdict"] for r in grading.judge(submission, spec)}
    assert got == {"triplet_loss": "pass", "gram_matrix": "missing", "verify": "pass"}


def test_a_reference_without_tags_or_outputs_is_refused(tmp_path):
    untagged = course_notebook()
    for cell in untagged.cells:
        cell.metadata.pop("tags", None)
    with pytest.raises(grading.GradingError, match="exercise:"):
        grading.reference_spec(untagged, "untagged.ipynb", grading.Options())
    with pytest.raises(grading.GradingError, match="--execute-reference"):
        grading.reference_spec(course_notebook(), "unexecuted.ipynb", grading.Options())


@pytest.mark.parametrize("content, says", [
    (b"", "empty"), (b"\x89PNG\r\n\x1a\n\x00\x00", "binary"), (b"{\"cells\": [", "not valid JSON"),
    (b"{\"hello\": 1}", "notebook format"),
])
def test_files_that_are_not_notebooks_get_a_clear_error(tmp_path, content, says):
    path = tmp_path / "homework.ipynb"
    path.write_bytes(content)
    with pytest.raises(grading.NotebookFileError, match=says) as err:
        grading.read_notebook(path)
    assert str(path) in str(err.value)


def test_an_image_output_cannot_put_markup_into_the_html_diff(tmp_path):
    from nbformat.v4 import new_code_cell, new_notebook, new_output
    evil = 'AAAA"><script>alert(1)</script>'
    a, b = new_notebook(cells=[new_code_cell("plot()")]), new_notebook(cells=[new_code_cell("plot()")])
    b.cells[0].outputs = [new_output("display_data", data={"image/png": evil})]
    for nb, name in ((a, "a.ipynb"), (b, "b.ipynb")):
        nbformat.write(nb, tmp_path / name)
    grading.diff_html(tmp_path / "a.ipynb", tmp_path / "b.ipynb", tmp_path / "diff.html")
    page = (tmp_path / "diff.html").read_text()
    assert "<script>alert(1)" not in page and "&lt;script&gt;" in page


def test_ctrl_c_on_a_class_stops_its_running_notebooks_at_once(work, tmp_path):
    """SIGINT to `grading class` while a notebook sleeps: one line, exit 130, within seconds, not
    after the notebook's timeout; no process of the notebook left."""
    import os
    import signal
    import time

    import psutil

    folder = tmp_path / "class"
    folder.mkdir()
    sleeper = course_notebook()
    sleeper.cells.insert(2, new_code_cell("import time; time.sleep(120)  # grading-ctrl-c-sleeper"))
    nbformat.write(sleeper, folder / "sleeper.ipynb")
    proc = subprocess.Popen([sys.executable, "-m", "happyhouse.grading", "class", str(folder), "--reference",
                             str(work / "reference.ipynb"), "--out", str(tmp_path / "out"), "--no-progress",
                             # the same stop either way; no sandbox uid running beside test_sandbox's process checks
                             "--no-sandbox"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    def kernels():
        return [p for p in psutil.Process(proc.pid).children(recursive=True) if "ipykernel" in " ".join(p.cmdline())]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None and not kernels():
        time.sleep(0.3)
    assert kernels(), "the notebook's kernel never started"
    time.sleep(5)  # the kernel is in the sleeping cell
    start = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and time.monotonic() - start < 30, err[-2000:]
    assert "interrupted: the running notebooks were stopped" in err and "Traceback" not in err
    time.sleep(1)
    assert not [p for p in psutil.process_iter(["cmdline"]) if "ipykernel" in " ".join(p.info["cmdline"] or [])
                and p.info["cmdline"] and str(tmp_path) in " ".join(p.info["cmdline"])]


def test_an_executed_notebook_rewritten_during_the_run_is_not_graded(work, tmp_path, monkeypatch):
    """The runner writes the executed notebook where the submission's processes run: a process left
    behind can rewrite it after the runner's last save (here: the reader sees it rewritten). Changed
    sources are caught against the submission, and nothing is graded."""
    from happyhouse.grading import execute
    read = execute._read_executed

    def rewritten(path, *args):
        nb = read(path, *args)
        nb.cells[2].source = TRIPLET.replace("triplet_loss", "hidden_helper")  # the evidence, changed
        return nb
    monkeypatch.setattr(execute, "_read_executed", rewritten)
    nbformat.write(course_notebook(), tmp_path / "rewrites.ipynb")
    report = grading.grade(tmp_path / "rewrites.ipynb", work / "reference.ipynb", options(sandbox=False))
    assert report["status"] == "error" and report["exercises"] == []
    assert "the executed notebook was changed during the run (cell 2 differs" in report["error"]


def test_check_cells_compares_types_and_sources_not_outputs():
    from happyhouse.grading.execute import check_cells
    submitted = course_notebook()
    executed = course_notebook()
    executed.cells[3].outputs = [nbformat.v4.new_output("stream", text="loss = 1\n")]
    check_cells(executed, submitted)  # outputs are the run's own
    executed.cells.append(new_code_cell("print('added')"))
    with pytest.raises(grading.GradingError, match="8 cells where the submission has 7"):
        check_cells(executed, submitted)
    executed.cells.pop()
    executed.cells[0] = new_code_cell(submitted.cells[0].source)  # a markdown cell turned into code
    with pytest.raises(grading.GradingError, match="cell 0 differs"):
        check_cells(executed, submitted)
