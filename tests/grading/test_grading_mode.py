"""Grading mode (the reference's grading:skip / grading:short tags) and --workers auto, on small
synthetic notebooks: a skipped cell leaves no trace, a shortened cell's result is graded right,
a student cannot opt out by tagging their own cells."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from happyhouse import grading

ROOT = Path(__file__).resolve().parents[2]
GiB = 2**30

TRAIN = ("def train(iterations):\n"
         "    w = np.zeros(3)\n"
         "    for _ in range(iterations):\n"
         "        w += 0.1 * (np.array([1.0, 2.0, 3.0]) - w)\n"
         "    return w")
LONG_RUN = ('Path("full_run.txt").write_text("the long run ran")\n'
            "weights = train(iterations=300)")
SHORT_RUN = "weights = train(iterations=3)"


def notebook(train=TRAIN, student_tags=False):
    """Reference (and, without outputs, a student's copy): a skipped picture cell, a shortened
    training run, and an exercise printing what the training made."""
    cells = [
        new_code_cell("import numpy as np\nfrom pathlib import Path"),
        new_code_cell(train),
        new_code_cell('Path("skipped_cell_ran.txt").write_text("a skipped cell ran")',
                      metadata={"tags": ["grading:skip"]}),
        new_code_cell(LONG_RUN, metadata={"tags": ["grading:short"], "grading": {"short": SHORT_RUN}}),
        new_code_cell('print("weights =", np.round(weights, 6))', metadata={"tags": ["exercise:train"]}),
        new_code_cell('Path("student_cell_ran.txt").write_text("ran")'),
    ]
    for index, cell in enumerate(cells):
        cell.id = f"cell-{index}"
    if student_tags:  # the student tags their exercise and their last cell to be skipped, in every way we know
        for cell in (cells[4], cells[5]):
            cell.metadata["tags"] = cell.metadata.get("tags", []) + ["grading:skip", grading.RUNNER_SKIP_TAG,
                                                                      "skip-execution"]
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}})


def student(nb):
    """A student's copy: the reference's tags on the long cells are gone, so they cannot decide."""
    for cell in nb.cells[2:4]:
        cell.metadata.pop("tags", None)
        cell.metadata.pop("grading", None)
    return nb


def options(folder, **changes):
    """Without the sandbox: these tests watch the files cells write into the working folder, which the
    sandbox keeps read-only (tests/grading/test_sandbox.py)."""
    return grading.Options(cell_timeout=60, notebook_timeout=300, workdir=str(folder), sandbox=False, **changes)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """A class of four graded with --workers auto against a reference executed in grading mode."""
    root = tmp_path_factory.mktemp("mode")
    nbformat.write(notebook(), root / "reference.ipynb")  # no outputs: --execute-reference
    (root / "class").mkdir()
    nbformat.write(student(notebook()), root / "class" / "correct.ipynb")
    nbformat.write(student(notebook(TRAIN.replace("0.1 *", "0.2 *"))), root / "class" / "wrong_train.ipynb")
    nbformat.write(student(notebook(student_tags=True)), root / "class" / "tags_itself.ipynb")
    no_ids = student(notebook())
    for cell in no_ids.cells:
        cell.id = f"other-{cell.id}"  # lost the released ids: the reference's cells are found by source
    nbformat.write(no_ids, root / "class" / "new_ids.ipynb")
    run = root / "run"
    run.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "happyhouse.grading", "class", str(root / "class"), "--reference",
         str(root / "reference.ipynb"), "--execute-reference", "--workers", "auto", "--workdir", str(run),
         "--timeout", "60", "--notebook-timeout", "300", "--out", str(root / "out"), "--no-sandbox"],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    reports = {Path(p).stem: json.loads(p.read_text()) for p in (root / "out" / "reports").glob("*.json")}
    return root, run, reports, result


def test_a_skipped_cell_is_not_run(graded):
    root, run, reports, result = graded
    assert set(reports) == {"correct", "wrong_train", "tags_itself", "new_ids"}, result.stderr
    assert not (run / "skipped_cell_ran.txt").exists()  # not by the reference, not by any submission
    assert not (run / "full_run.txt").exists()          # the shortened cell ran its short source only
    for name, report in reports.items():
        assert [c["cell"] for c in report["cells"]["skipped"]] == [2], name
        assert [c["cell"] for c in report["cells"]["shortened"]] == [3], name
    executed = nbformat.read(root / "out" / "executed" / "correct.ipynb", as_version=4)
    assert executed.metadata["grading"]["cells"]["2"]["status"] == "skipped" and executed.cells[2].outputs == []
    assert executed.cells[3].source == SHORT_RUN


def test_an_exercise_after_a_shortened_cell_is_graded_right(graded):
    _, _, reports, result = graded
    verdicts = {name: [e["verdict"] for e in r["exercises"]] for name, r in reports.items()}
    assert verdicts == {"correct": ["pass"], "wrong_train": ["fail"], "tags_itself": ["pass"], "new_ids": ["pass"]}, result.stderr
    (train,) = reports["correct"]["exercises"]
    assert train["expected"] == "weights = [0.271 0.542 0.813]\n"  # 3 iterations (300 would print [1. 2. 3.])
    assert "expected 0.271, got 0.488" in reports["wrong_train"]["exercises"][0]["reason"]


def test_a_student_cannot_opt_out_by_tagging_their_own_cells(graded):
    root, run, reports, _ = graded
    assert (run / "student_cell_ran.txt").exists()
    report = reports["tags_itself"]
    assert report["cells"]["skipped"] == [{"cell": 2, "id": "cell-2"}]  # only the reference's choice
    executed = nbformat.read(root / "out" / "executed" / "tags_itself.ipynb", as_version=4)
    assert executed.metadata["grading"]["cells"]["5"]["status"] == "ok"
    assert executed.cells[4].outputs  # its tagged exercise cell ran and printed


def test_the_report_lists_skipped_and_shortened_cells(graded):
    root, _, reports, result = graded
    assert "grading mode: skipped cell 2; shortened cell 3" in grading.format_table(reports["correct"])
    rows = {r["submission"]: r for r in csv.DictReader(open(root / "out" / "scores.csv"))}
    assert rows["correct.ipynb"]["skipped"] == "2" and rows["correct.ipynb"]["shortened"] == "3"
    assert all(r["peak_memory_mb"] > 20 for r in reports.values())  # a kernel and its runner take tens of MB
    assert "workers auto: 1 at a time" in result.stderr and "first notebook measured alone" in result.stderr


def test_full_mode_runs_every_cell(tmp_path):
    nbformat.write(notebook(), tmp_path / "reference.ipynb")
    nbformat.write(student(notebook()), tmp_path / "alice.ipynb")
    report = grading.grade(tmp_path / "alice.ipynb", tmp_path / "reference.ipynb", options(tmp_path, full=True),
                           execute_reference=True)
    assert (tmp_path / "skipped_cell_ran.txt").exists() and (tmp_path / "full_run.txt").exists()
    assert report["cells"]["mode"] == "full" and report["cells"]["skipped"] == []
    assert report["exercises"][0]["verdict"] == "pass"
    assert report["exercises"][0]["got"] == "weights = [1. 2. 3.]\n"


# ----------------------------------------------------------------------------- no kernel needed

@pytest.mark.parametrize("available, peak, cores, workers", [
    (16 * GiB, 1.5 * GiB, 2, 2),     # plenty of memory: the cores decide
    (16 * GiB, 1.5 * GiB, 16, 8),    # 0.8 * 16 / 1.5 = 8.5 notebooks fit
    (3 * GiB, 1.5 * GiB, 8, 1),      # 0.8 * 3 / 1.5 = 1.6: one at a time, never swap
    (0.5 * GiB, 2 * GiB, 4, 1),      # not even one fits: still one (it may swap, but grading goes on)
    (64 * GiB, None, 16, 1),         # not measured yet: the first notebook runs alone
])
def test_workers_auto_from_free_memory_and_peak(available, peak, cores, workers):
    assert grading.auto_workers(available, peak, cores) == workers


def test_parallel_notebooks_share_the_cores_between_their_kernels(monkeypatch):
    """Several notebooks at once: each kernel's TensorFlow/OpenMP pools get cores // notebooks threads;
    a notebook alone (or the first, measured alone by auto) keeps TensorFlow's defaults."""
    from happyhouse.grading import grader
    from happyhouse.grading.execute import THREAD_VARIABLES, grading_env

    env = grading_env(1)
    assert all(env[name] == "1" for name in THREAD_VARIABLES)
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    assert "TF_NUM_INTRAOP_THREADS" not in grading_env()

    monkeypatch.setattr(grader.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(grader, "available_memory", lambda: 64 * GiB)
    for workers, expected in ((1, [None] * 3), (2, [2] * 3), (8, [1] * 3), ("auto", [None, 2, 2])):
        seen = []

        def job(name, data, threads=None):
            seen.append(threads)
            return {"peak_memory_mb": 25 * 1024}  # auto: 0.8 * 64 GiB // 25 GiB = 2 at once

        class Bar:
            def write(self, *args, **kwargs):
                pass

        grader._run_here([(f"s{i}", b"") for i in range(3)], job, workers, None, lambda name, f: None, Bar())
        assert seen == expected, workers


def test_the_plan_refuses_tags_that_cannot_work():
    nb = notebook()
    assert [(s["index"], s["action"]) for s in grading.grading_plan(nb, "ref")] == [(2, "skip"), (3, "short")]
    nb.cells[3].metadata.pop("grading")
    with pytest.raises(grading.GradingError, match=r"ref: cell 3 \(id cell-3\) is tagged grading:short but"):
        grading.grading_plan(nb, "ref")
    nb = notebook()
    nb.cells[4].metadata["tags"].append("grading:skip")
    with pytest.raises(grading.GradingError, match="is graded .* a graded cell always runs in full"):
        grading.grading_plan(nb, "ref")


def test_the_command_line_refuses_bad_worker_counts(tmp_path):
    result = subprocess.run([sys.executable, "-m", "happyhouse.grading", "class", str(tmp_path), "--reference",
                             "r.ipynb", "--workers", "many"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "give a number of notebooks (1 or more) or 'auto'" in result.stderr


def test_a_reference_whose_short_settings_fail_is_refused(tmp_path):
    nb = notebook()
    nb.cells[3].metadata["grading"]["short"] = "weights = train(iterations=-1) + undefined_name"
    nbformat.write(nb, tmp_path / "reference.ipynb")
    nbformat.write(student(notebook()), tmp_path / "alice.ipynb")
    with pytest.raises(grading.GradingError, match=r"cell 3's short settings .* NameError: name 'undefined_name'"):
        grading.grade(tmp_path / "alice.ipynb", tmp_path / "reference.ipynb", options(tmp_path), execute_reference=True)
