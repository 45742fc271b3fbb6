"""Hidden tests, grader side: inputs drawn from the grader's seed, values read back, verdicts.

An instructor keeps, beside a reference notebook ``REF.ipynb``, a module ``hidden_tests/REF.py``
(never copied by ``release``) with one function::

    def cases(rng: numpy.random.Generator) -> dict:
        return {"gram_matrix": {"cases": [{"args": [Tensor(a)]}, ...], "rtol": 1e-4},
                "compute_layer_style_cost": {"cases": [...],
                                             "inject": {"gram_matrix": FromReference("gram_matrix", [2, 3])}},
                ...}

Inputs are values: numpy arrays (passed as arrays), :class:`Tensor`, :class:`Variable`, tuples,
dicts, numbers, strings, :class:`Lookup` (a function answering from a table, e.g. a stubbed
``img_to_encoding``), :class:`ToyCost` (``model_nn``'s toy cost), :class:`Opaque` (an object to
pass on). ``inject`` replaces names in the notebook's namespace while the exercise's cases run (so the student's
own helpers see them too), then puts the notebook's back;
:class:`FromReference` injects the reference's results on those cases as a lookup, so an exercise
that calls an earlier one is tested with the reference's version of it and one mistake costs one
exercise. The harness (harness.py) runs in the student's kernel and sees only these values.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .notebook import GradingError
from .untrusted import TooLarge, load_arrays, read_capped

MAX_VALUES_BYTES = 64 * 2**20  # what the grader reads back per exercise


@dataclass
class Tensor:
    value: np.ndarray


@dataclass
class Variable:
    value: np.ndarray


@dataclass
class Lookup:
    name: str
    pairs: list  # [(key, value)]: key a string or an array (the first argument), or a list (the first ``nargs``)
    nargs: int = 1  # arguments compared with the keys; later ones (e.g. ``model``) are ignored


@dataclass
class FromReference:
    exercise: str
    cases: list[int]
    as_tensor: bool = True


@dataclass
class ToyCost:
    target: np.ndarray
    weight: float


@dataclass
class Opaque:
    name: str


def hidden_tests_path(reference: str | Path) -> Path:
    """Where a reference's hidden tests live: ``hidden_tests/<stem>.py`` beside it."""
    reference = Path(reference)
    return reference.resolve().parent / "hidden_tests" / f"{reference.stem}.py"


def load_cases(path: str | Path, seed: int) -> dict:
    """Draw the hidden tests of module ``path`` with ``seed``: exercise -> {function, cases, inject, rtol, atol}."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"hidden_tests_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        drawn = module.cases(np.random.default_rng(seed))
    except Exception as err:
        raise GradingError(f"{path}: the hidden tests could not be drawn ({type(err).__name__}: {err}); "
                           "fix the module (it must define cases(rng) -> dict).") from None
    for exercise, test in drawn.items():
        test.setdefault("function", exercise)
        test.setdefault("inject", {})
        test.setdefault("rtol", 1e-4)
        test.setdefault("atol", 1e-6)
        if not test.get("cases"):
            raise GradingError(f"{path}: exercise {exercise!r} has no cases.")
    return drawn


def fingerprint(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def encode_cases(drawn: dict, reference_values: dict | None) -> tuple[dict, dict]:
    """(JSON document, arrays) for the harness; ``reference_values`` None: the reference's own run
    (no :class:`FromReference` injected), else the reference's values resolve them."""
    arrays: dict[str, np.ndarray] = {}

    def enc(v):
        if isinstance(v, Tensor):
            return {"$tensor": put(v.value)}
        if isinstance(v, Variable):
            return {"$variable": put(v.value)}
        if isinstance(v, np.ndarray):
            return {"$array": put(v)}
        if isinstance(v, tuple):
            return {"$tuple": [enc(x) for x in v]}
        if isinstance(v, list):
            return [enc(x) for x in v]
        if isinstance(v, dict):
            return {"$dict": [[str(k), enc(x)] for k, x in v.items()]}
        if isinstance(v, Lookup):
            return {"$lookup": [[enc(k), enc(x)] for k, x in v.pairs], "name": v.name, "nargs": v.nargs}
        if isinstance(v, ToyCost):
            return {"$toy_cost": put(v.target), "weight": float(v.weight)}
        if isinstance(v, Opaque):
            return {"$object": v.name}
        if isinstance(v, (np.floating, np.integer)):
            return v.item()
        return v

    def put(a):
        key = f"a{len(arrays)}"
        arrays[key] = np.array(a, order="C")
        return key

    doc = {}
    for exercise, test in drawn.items():
        inject = {}
        for name, value in test["inject"].items():
            if isinstance(value, FromReference):
                if reference_values is None:
                    continue
                value = _resolve(value, name, drawn, reference_values)
            inject[name] = enc(value)
        doc[exercise] = {"function": test["function"], "inject": inject,
                         "cases": [{"args": enc(list(c.get("args", []))), "kwargs": enc(dict(c.get("kwargs", {})))}
                                   for c in test["cases"]]}
    return {"exercises": doc}, arrays


def _resolve(ref: FromReference, name: str, drawn: dict, reference_values: dict) -> Lookup:
    """The reference's results on cases ``ref.cases`` of ``ref.exercise``, as a lookup table."""
    pairs = []
    for k in ref.cases:
        args = [a.value if isinstance(a, (Tensor, Variable)) else a for a in drawn[ref.exercise]["cases"][k].get("args", [])]
        value = reference_values[ref.exercise]["cases"][k]["value"]
        value = Tensor(np.asarray(value, np.float32)) if ref.as_tensor else value
        pairs.append((args[0] if len(args) == 1 else list(args), value))
    return Lookup(name, pairs, len(args))


def write_inputs(folder: Path, drawn: dict, reference_values: dict | None) -> None:
    doc, arrays = encode_cases(drawn, reference_values)
    (folder / "cases.json").write_text(json.dumps(doc))
    np.savez(folder / "cases.npz", **arrays)
    (folder / "harness.py").write_bytes(Path(__file__).with_name("harness.py").read_bytes())


def read_values(folder: Path, exercise: str) -> dict | None:
    """The values the harness wrote for ``exercise`` (None when it wrote none), decoded to numpy.

    Read as untrusted.py reads (regular files, size limits, no pickles, no compression): whatever is
    there came from the student's process.
    """
    try:
        doc = read_capped(folder / f"values_{exercise}.json", MAX_VALUES_BYTES)
        if doc is None:
            return None
        npz = read_capped(folder / f"values_{exercise}.npz", MAX_VALUES_BYTES)
    except TooLarge:
        return {"invalid": "the hidden tests' values are too large"}
    try:
        doc = json.loads(doc)
        arrays = load_arrays(npz) if npz is not None else {}
        cases = [{**c, "value": _decode(c["value"], arrays)} if "value" in c else c for c in doc.get("cases", [])]
        return {"missing": doc.get("missing"), "cases": cases}
    except Exception as err:
        return {"invalid": f"the hidden tests' values could not be read ({type(err).__name__})"}


def _decode(v, arrays):
    if isinstance(v, dict):
        if "$array" in v:
            return arrays[v["$array"]]
        if "$number" in v:
            return float(v["$number"])
        if "$seq" in v:
            return tuple(_decode(x, arrays) for x in v["$seq"])
        if "$dict" in v:
            return {k: _decode(x, arrays) for k, x in v["$dict"]}
        if "$unsupported" in v:
            return Unsupported(v["$unsupported"])
        raise ValueError("unknown value")
    if v is None or isinstance(v, (bool, str)):
        return v
    raise ValueError("unknown value")


@dataclass
class Unsupported:
    what: str


def compare_values(expected, got, rtol: float, atol: float, where: str = "the result") -> str | None:
    """None when ``got`` equals ``expected`` (numbers within ``atol + rtol * |expected|``), else why not."""
    if isinstance(got, Unsupported):
        return f"{where} is a {got.what}, not a value"
    if isinstance(expected, (bool, np.bool_)) or isinstance(expected, str) or expected is None:
        if type(got) in (bool, np.bool_) and isinstance(expected, (bool, np.bool_)):
            return None if bool(got) == bool(expected) else f"{where}: expected {expected}, got {got}"
        return None if got == expected and type(got) is type(expected) else f"{where}: expected {expected!r}, got {_short(got)}"
    if isinstance(expected, tuple):
        if not isinstance(got, tuple) or len(got) != len(expected):
            return f"{where}: expected {len(expected)} values, got {_short(got)}"
        for k, (e, g) in enumerate(zip(expected, got)):
            why = compare_values(e, g, rtol, atol, f"{where}[{k}]")
            if why:
                return why
        return None
    if isinstance(expected, dict):
        if not isinstance(got, dict) or set(got) != set(expected):
            return f"{where}: expected a dict with keys {sorted(expected)}, got {_short(got)}"
        return next((w for k in expected if (w := compare_values(expected[k], got[k], rtol, atol, f"{where}[{k!r}]"))), None)
    e = np.asarray(expected, np.float64)
    if isinstance(got, (str, tuple, dict, bool)) or got is None:
        return f"{where}: expected a number or array, got {_short(got)}"
    g = np.asarray(got, np.float64)
    if g.size == e.size == 1 and g.ndim <= 1 and e.ndim <= 1:
        g, e = g.reshape(()), e.reshape(())
    if g.shape != e.shape:
        return f"{where}: expected shape {e.shape}, got {g.shape}"
    bad = ~np.isclose(g, e, rtol=rtol, atol=atol, equal_nan=True)
    if bad.any():
        i = np.unravel_index(int(np.argmax(bad)), e.shape) if e.ndim else ()
        return (f"{where}{list(i) if i else ''}: expected {_num(e[i])}, got {_num(g[i])} "
                f"(rtol={rtol:g}, atol={atol:g})")
    return None


def _num(x) -> str:
    x = float(x)
    return repr(x) if math.isfinite(x) else str(x)


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def verdict(test: dict, reference: dict, got: dict | None, status: dict | None,
            stopped: tuple[str, str] | None = None) -> tuple[str, str]:
    """(verdict, reason) for one exercise: its drawn ``test``, the reference's and the student's values,
    how the harness cell ended (``status`` from runner's harness.json) and why the notebook was
    ``stopped``, if it was: (the verdict that gives, "timeout" or "error"; the problem)."""
    if got is None:
        if stopped:
            return stopped[0], f"the hidden tests did not run: {stopped[1]}"
        if status and status.get("status") == "timeout":
            return "timeout", "the hidden tests ran longer than the cell timeout"
        if status and status.get("status") in ("died", "error"):
            return "error", f"the hidden tests could not run: {status.get('error')}"
        return "not-run", "the hidden tests did not run (the notebook did not finish)"
    if got.get("invalid"):
        return "error", got["invalid"]
    if got.get("missing"):
        return "missing", got["missing"]
    if len(got["cases"]) != len(reference["cases"]):
        return "error", "the hidden tests' values are incomplete"
    for k, (ref, mine) in enumerate(zip(reference["cases"], got["cases"]), start=1):
        if "error" in mine:
            return "error", f"hidden test {k} raised {mine['error']}"
        why = compare_values(ref["value"], mine["value"], test["rtol"], test["atol"])
        if why:
            return "fail", f"hidden test {k}: {why}"
    return "pass", ""
