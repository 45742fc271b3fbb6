"""Hidden tests, kernel side: call the student's function on the drawn inputs and write the values.

Executed inside the student's kernel after the notebook ran (runner.py's last cells), with the
globals ``USER_NS`` (the notebook's namespace), ``IN`` (a read-only folder holding ``cases.json``
and ``cases.npz``), ``OUT`` (the folder for values) and ``EXERCISE``. It knows no answers: the
inputs and any injected helpers are values (see hidden.py for the encoding); what it writes is
values only, ``OUT/values_<exercise>.json`` and ``.npz`` (no pickle), which the grader compares
with the reference's outside the sandbox. Standard library and numpy only (TensorFlow only
when the inputs ask for tensors, and the notebook has imported it already).
"""
import inspect
import io
import json
import os
import tempfile
import time

import numpy as np

MAX_ELEMENTS = 10_000_000  # per returned value


def _tf():
    import tensorflow as tf

    return tf


def _close(x, key) -> bool:
    if isinstance(key, str) or isinstance(x, str):
        return isinstance(x, str) and x == key
    if isinstance(key, list):
        return isinstance(x, (list, tuple)) and len(x) == len(key) and all(_close(a, b) for a, b in zip(x, key))
    try:
        a = np.asarray(x, dtype=np.float64)
    except Exception:
        return False
    return a.shape == np.shape(key) and bool(np.allclose(a, key, rtol=1e-5, atol=1e-6))


def _lookup(name, pairs, nargs, parameters=()):
    """A function answering from ``pairs`` [(key, value)], its key the first ``nargs`` arguments, given
    by position or (``parameters``: their names) by keyword."""
    def stub(*args, **kwargs):
        args = [*args, *(kwargs[p] for p in parameters[len(args):nargs] if p in kwargs)]
        key = args[0] if nargs == 1 and args else list(args[:nargs])
        for k, value in pairs:
            if _close(key, k):
                return value
        raise KeyError(f"{name} was called with an input the hidden tests do not know (the reference never "
                       "passes it; check what your function gives it)")
    stub.__name__ = name
    return stub


def _toy_cost(target, weight):
    tf = _tf()
    target = tf.constant(target)

    def cost(image):
        J_content = tf.reduce_mean(tf.square(image - target))
        J_style = tf.reduce_mean(tf.square(image))
        return J_content + weight * J_style, J_content, J_style
    return cost


class Opaque:
    """An object the function must only pass on (a model for a stubbed ``img_to_encoding``)."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"<{self.name}>"


def decode(v, arrays):
    if isinstance(v, list):
        return [decode(x, arrays) for x in v]
    if not isinstance(v, dict):
        return v
    if "$array" in v:
        return arrays[v["$array"]].copy()
    if "$tensor" in v:
        return _tf().constant(arrays[v["$tensor"]])
    if "$variable" in v:
        return _tf().Variable(arrays[v["$variable"]])
    if "$tuple" in v:
        return tuple(decode(x, arrays) for x in v["$tuple"])
    if "$dict" in v:
        return {k: decode(x, arrays) for k, x in v["$dict"]}
    if "$lookup" in v:
        return _decode_lookup(v, arrays)
    if "$toy_cost" in v:
        return _toy_cost(arrays[v["$toy_cost"]], v["weight"])
    if "$object" in v:
        return Opaque(v["$object"])
    raise ValueError(f"unknown hidden-test value {sorted(v)}")


def _decode_lookup(v, arrays, parameters=()):
    return _lookup(v["name"], [(decode(k, arrays), decode(x, arrays)) for k, x in v["$lookup"]], v.get("nargs", 1),
                   parameters)


def _parameters(fn) -> tuple:
    """The parameter names of ``fn`` (the notebook's own version of an injected helper), or ()."""
    try:
        return tuple(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return ()


def _injected(name, v, arrays, user_ns):
    """What replaces ``name`` in the notebook: a lookup takes keyword arguments by the names of the
    notebook's own ``name`` (what the student's code calls it by)."""
    if isinstance(v, dict) and "$lookup" in v:
        return _decode_lookup(v, arrays, _parameters(user_ns.get(name)))
    return decode(v, arrays)


def encode(v, arrays, key):
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return {"$number": float(v)}
    if isinstance(v, (tuple, list)):
        return {"$seq": [encode(x, arrays, f"{key}.{i}") for i, x in enumerate(v)]}
    if isinstance(v, dict):
        return {"$dict": [[str(k), encode(x, arrays, f"{key}.{k}")] for k, x in v.items()]}
    try:
        a = np.asarray(v)
    except Exception as err:
        return {"$unsupported": f"{type(v).__name__} ({type(err).__name__})"}
    if a.dtype == object or a.dtype.kind not in "biufc" or a.size > MAX_ELEMENTS:
        return {"$unsupported": f"{type(v).__name__} of dtype {a.dtype}, {a.size} elements"}
    if a.dtype.kind == "b" and a.ndim == 0:
        return bool(a)
    arrays[key] = a
    return {"$array": key}


def _case(fn, case, arrays, out_arrays, key) -> dict:
    start = time.monotonic()
    try:
        result = fn(*decode(case.get("args", []), arrays), **decode(case.get("kwargs", {}), arrays))
        entry = {"value": encode(result, out_arrays, key)}
    except Exception as err:
        entry = {"error": f"{type(err).__name__}: {err}"[:500]}
    entry["seconds"] = round(time.monotonic() - start, 4)
    return entry


def run(user_ns, in_dir, out_dir, exercise):
    with open(os.path.join(in_dir, "cases.json")) as f:
        spec = json.load(f)["exercises"][exercise]
    with np.load(os.path.join(in_dir, "cases.npz"), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    fn = user_ns.get(spec["function"])
    values, out_arrays = {"exercise": exercise, "cases": []}, {}
    if not callable(fn):
        values["missing"] = f"the notebook defines no function {spec['function']}"
    else:
        # the reference's helpers in place of the notebook's own, for every function of the notebook that
        # calls them (the tested one and any helper of the student's), until the cases are done
        inject = {k: _injected(k, x, arrays, user_ns) for k, x in spec.get("inject", {}).items()}
        saved = {k: user_ns[k] for k in inject if k in user_ns}
        user_ns.update(inject)
        try:
            for k, case in enumerate(spec["cases"]):
                values["cases"].append(_case(fn, case, arrays, out_arrays, f"c{k}"))
        finally:
            for k in inject:
                user_ns.pop(k, None)
            user_ns.update(saved)
    npz = io.BytesIO()
    np.savez(npz, **out_arrays)
    _replace_file(os.path.join(out_dir, f"values_{exercise}.npz"), npz.getvalue())
    _replace_file(os.path.join(out_dir, f"values_{exercise}.json"), json.dumps(values).encode())


def _replace_file(path, data: bytes) -> None:
    """Write ``data`` to a new file beside ``path``, then rename it over ``path``: a pipe or link the
    notebook left there is replaced, never opened."""
    fd, partial = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".values.", suffix=".partial")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(partial, path)


if __name__ == "grading_harness":
    run(USER_NS, IN, OUT, EXERCISE)  # noqa: F821 (given by the cell that executes this file)
