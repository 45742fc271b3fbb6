"""The hidden tests of the nine course functions, and nothing in the student's workspace that passes them.

The reference functions are taken from the reference notebooks' graded cells (the solutions) and run
here, in this process, through the same harness as in a kernel; the course's helpers they call come
from the engine (``make_train_step``) or are given here (``STYLE_LAYERS``), so these tests need
neither ``fr_utils`` nor ``nst_utils``.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from happyhouse.grading import hidden
from happyhouse.grading import harness, sandbox
from happyhouse.grading.release import graded_function
from happyhouse.grading.workspace import write_workspace
from happyhouse.style.optimize import make_train_step

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = {"Face_Recognition": ("triplet_loss", "verify", "who_is_it"),
             "Neural_Style_Transfer": ("compute_content_cost", "gram_matrix", "compute_layer_style_cost",
                                       "compute_style_cost", "total_cost", "model_nn")}

tf = pytest.importorskip("tensorflow")


def course_img_to_encoding(image_path, model):
    """fr_utils.img_to_encoding's signature: the hidden tests inject their own."""
    raise AssertionError("the hidden tests' img_to_encoding was not injected")


def reference_functions(stem: str, edits: dict | None = None) -> dict:
    """The graded functions of notebook ``stem`` (its solution cells, each ``edits`` old -> new text applied),
    in a namespace with what they use."""
    ns = {"tf": tf, "np": np, "STYLE_LAYERS": [("conv1_1", 1.0)], "make_train_step": make_train_step,
          "img_to_encoding": course_img_to_encoding, "save_image": None}
    for cell in nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4).cells:
        if cell.cell_type == "code" and graded_function(cell.source):
            source = cell.source
            for old, new in (edits or {}).items():
                source = source.replace(old, new)
            exec(source, ns)
    return ns


def run_harness(ns: dict, drawn: dict, reference, folder: Path) -> dict:
    """Values of the functions in ``ns`` on the ``drawn`` hidden tests (``reference``: the reference's values, for
    the injected helpers; None for the reference itself)."""
    folder.mkdir(parents=True, exist_ok=True)
    hidden.write_inputs(folder, drawn, reference)
    for exercise in drawn:
        harness.run(ns, str(folder), str(folder), exercise)
    return {x: hidden.read_values(folder, x) for x in drawn}


def verdicts(drawn, reference, values) -> dict:
    return {x: hidden.verdict(drawn[x], reference[x], values[x], None) for x in drawn}


@pytest.fixture(scope="module", params=list(NOTEBOOKS))
def course(request, tmp_path_factory):
    stem = request.param
    drawn = hidden.load_cases(ROOT / "notebooks" / "hidden_tests" / f"{stem}.py", seed=20261204)
    ns = reference_functions(stem)
    folder = tmp_path_factory.mktemp(stem)
    reference = run_harness(ns, drawn, None, folder / "reference")
    return {"stem": stem, "drawn": drawn, "ns": ns, "reference": reference, "folder": folder}


def test_every_graded_function_has_hidden_tests(course):
    assert set(course["drawn"]) == set(NOTEBOOKS[course["stem"]])
    for exercise, values in course["reference"].items():
        assert values and not values.get("missing") and len(values["cases"]) >= 1
        assert all("value" in c for c in values["cases"]), (exercise, values["cases"])


def test_the_reference_passes_its_hidden_tests_and_other_seeds_draw_other_inputs(course):
    got = run_harness(course["ns"], course["drawn"], course["reference"], course["folder"] / "again")
    assert {x: v[0] for x, v in verdicts(course["drawn"], course["reference"], got).items()} == \
        {x: "pass" for x in course["drawn"]}
    other = hidden.load_cases(ROOT / "notebooks" / "hidden_tests" / f"{course['stem']}.py", seed=7)
    a, b = hidden.encode_cases(course["drawn"], None)[1], hidden.encode_cases(other, None)[1]
    assert any(k not in b or a[k].shape != b[k].shape or not np.allclose(a[k], b[k]) for k in a)


def _scaled(fn):
    def wrong(*args, **kwargs):
        result = fn(*args, **kwargs)
        if isinstance(result, tuple):
            return (result[0] * 1.01, *result[1:])
        return result * 1.01
    return wrong


def test_a_wrong_function_fails_its_own_exercise_only(course):
    """Each function in turn off by 1 %: its exercise fails; the others pass, the style costs with the
    reference's gram_matrix / compute_layer_style_cost injected."""
    ns = course["ns"]  # the functions' globals: changed in place, as in a kernel, then put back
    for name in NOTEBOOKS[course["stem"]]:
        original, ns[name] = ns[name], _scaled(ns[name])
        try:
            got = run_harness(ns, course["drawn"], course["reference"], course["folder"] / f"wrong_{name}")
        finally:
            ns[name] = original
        result = {x: v[0] for x, v in verdicts(course["drawn"], course["reference"], got).items()}
        assert result == {x: "fail" if x == name else "pass" for x in course["drawn"]}, (name, result)


#: The reference's calls of the helpers the hidden tests inject, as a student may write them: by keyword.
KEYWORD_CALLS = {
    "Face_Recognition": {"img_to_encoding(image_path, model)": "img_to_encoding(image_path=image_path, model=model)"},
    "Neural_Style_Transfer": {"gram_matrix(a_S)": "gram_matrix(A=a_S)",
                              "compute_layer_style_cost(a_S[layer_name], a_G[layer_name])":
                                  "compute_layer_style_cost(a_S[layer_name], a_G=a_G[layer_name])"}}


def test_helpers_called_by_keyword_pass(course):
    """A student calling an injected helper with keyword arguments (``gram_matrix(A=a_S)``) is tested
    with the reference's helper as well: their exercises pass (they were errors before)."""
    edits = KEYWORD_CALLS[course["stem"]]
    sources = "".join(c.source for c in nbformat.read(ROOT / "notebooks" / f"{course['stem']}.ipynb", as_version=4).cells)
    assert all(old in sources for old in edits)  # the reference still calls them so: the test edits something
    ns = reference_functions(course["stem"], edits)
    got = run_harness(ns, course["drawn"], course["reference"], course["folder"] / "keywords")
    assert {x: v[0] for x, v in verdicts(course["drawn"], course["reference"], got).items()} == \
        {x: "pass" for x in course["drawn"]}


def test_hard_coded_returns_fail(course):
    ns = {name: (lambda *a, **k: tf.constant(528.143)) for name in NOTEBOOKS[course["stem"]]}
    got = run_harness(ns, course["drawn"], course["reference"], course["folder"] / "hard_coded")
    assert {v[0] for v in verdicts(course["drawn"], course["reference"], got).values()} <= {"fail", "error"}


# ----------------------------------------------------------------------------- nothing to borrow

PROBE = '''
import importlib, json, os, pkgutil, signal, sys, types
sys.path.insert(0, "/grading/in")
import harness

def alarm(*_):
    raise TimeoutError("took too long")

signal.signal(signal.SIGALRM, alarm)
names = [p[:-3] for p in os.listdir("/workspace") if p.endswith(".py")]
import happyhouse
names += ["happyhouse"] + [m.name for m in pkgutil.walk_packages(happyhouse.__path__, "happyhouse.")]
callables, broken = {}, []
for name in sorted(set(names)):
    try:
        module = importlib.import_module(name)
    except BaseException as err:
        broken.append(f"{name}: {type(err).__name__}")
        continue
    for attr in dir(module):
        value = getattr(module, attr, None)
        if not attr.startswith("_") and callable(value) and not isinstance(value, type(sys)):
            callables.setdefault(id(value), (f"{name}.{attr}", value))
exercises = json.load(open("/grading/in/cases.json"))["exercises"]
listing = []
for k, (label, fn) in enumerate(callables.values()):
    listing.append(label)
    for exercise, spec in exercises.items():
        out = f"/grading/out/{k}"
        os.makedirs(out, exist_ok=True)
        # the candidate in its own module's namespace, so the injected helpers reach what it calls there
        ns = fn.__globals__ if isinstance(fn, types.FunctionType) else {}
        had, before = spec["function"] in ns, ns.get(spec["function"])
        ns[spec["function"]] = fn
        signal.alarm(5)
        try:
            harness.run(ns, "/grading/in", out, exercise)
        except BaseException as err:
            pass
        finally:
            signal.alarm(0)
            if had:
                ns[spec["function"]] = before
            else:
                ns.pop(spec["function"], None)
json.dump({"callables": listing, "broken": broken}, open("/grading/out/listing.json", "w"))
'''


def test_nothing_importable_in_the_workspace_passes_a_hidden_test(course, tmp_path):
    """Every public callable of the released workspace (course modules, the happyhouse copy) is run, in
    the sandbox, against this notebook's hidden tests: none passes (a module that defined or re-exported
    a graded function, or an equivalent of one, would make it fail and be named)."""
    sandbox.check()
    workspace = write_workspace(tmp_path / "workspace")
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    out_dir.mkdir()
    hidden.write_inputs(in_dir, course["drawn"], course["reference"])
    (in_dir / "probe.py").write_text(PROBE)
    sandbox.prepare(out_dir, in_dir, 62999 if os.geteuid() == 0 else None)
    limits = sandbox.Limits()
    argv = [sys.executable, "-c", "import os, runpy, sys; uid = int(sys.argv[1]); "
            "uid >= 0 and (os.setgroups([]), os.setresgid(uid, uid, uid), os.setresuid(uid, uid, uid)); "
            "runpy.run_path('/grading/in/probe.py', run_name='__main__')", str(62999 if os.geteuid() == 0 else -1)]
    command = sandbox.command(argv, workspace, in_dir, out_dir, sandbox.environment(1), limits, None)
    done = subprocess.run(command, capture_output=True, text=True, timeout=900,
                          preexec_fn=lambda: sandbox.apply_limits(limits))
    assert (out_dir / "listing.json").is_file(), done.stderr[-3000:]
    listing = json.loads((out_dir / "listing.json").read_text())
    assert len(listing["callables"]) > 50 and not [b for b in listing["broken"] if b.startswith(("fr_utils", "nst_utils"))]
    passing = []
    for k, label in enumerate(listing["callables"]):
        for exercise in course["drawn"]:
            values = hidden.read_values(out_dir / str(k), exercise)
            if values and hidden.verdict(course["drawn"][exercise], course["reference"][exercise], values, None)[0] == "pass":
                passing.append(f"{label} passes {exercise}")
    assert passing == [], ("these callables of the workspace answer graded exercises (they must leave the course "
                           f"modules and the package, issue 20): {passing}")


# ----------------------------------------------------------------------------- the real notebook, sandboxed

def test_the_style_notebook_is_graded_by_its_hidden_tests_in_the_sandbox(course_images, tmp_path):
    """A fresh copy passes all six; a copy with the Gram matrix transposed fails gram_matrix only (the
    style costs get the reference's gram_matrix results), though its visible test cell is unchanged."""
    from happyhouse.grading.grader import grade_class
    from happyhouse.grading.notebook import Options

    reference = ROOT / "notebooks" / "Neural_Style_Transfer.ipynb"
    fresh = nbformat.read(reference, as_version=4)
    for cell in fresh.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    (tmp_path / "class").mkdir()
    nbformat.write(fresh, tmp_path / "class" / "fresh.ipynb")
    for cell in fresh.cells:
        if graded_function(cell.source) == "gram_matrix":
            cell.source = cell.source.replace("GA = tf.matmul(A, tf.transpose(A))", "GA = tf.matmul(tf.transpose(A), A)")
            assert "tf.transpose(A), A)" in cell.source
    nbformat.write(fresh, tmp_path / "class" / "transposed.ipynb")
    reports = grade_class(tmp_path / "class", reference, Options(cell_timeout=300, notebook_timeout=600, seed=11),
                          workers=2, progress=False)
    verdicts = {r["submission"]: {e["exercise"]: e["verdict"] for e in r["exercises"]} for r in reports}
    six = {name: "pass" for name in NOTEBOOKS["Neural_Style_Transfer"]}
    assert verdicts == {"fresh.ipynb": six, "transposed.ipynb": {**six, "gram_matrix": "fail"}}, \
        [r["error"] or [(e["exercise"], e["reason"]) for e in r["exercises"]] for r in reports]
    assert all(e["decided_by"] == "hidden tests" and r["sandbox"] for r in reports for e in r["exercises"])
