"""Hidden tests of notebooks/Face_Recognition.ipynb (instructor side: `grading release` never copies them).

Drawn at grading time from the grader's seed; see happyhouse/grading/hidden.py for the values.
``verify`` and ``who_is_it`` get a stubbed ``img_to_encoding`` (a table: picture path -> encoding)
and an opaque model, so they are tested on databases of made-up residents without any network.
"""
import numpy as np

from happyhouse.grading.hidden import Lookup, Opaque, Tensor

NAMES = ["ana", "bo", "chen", "dara", "eli", "femi", "gus", "hana", "ivo", "jun"]


def _unit(rng, d):
    v = rng.normal(size=d)
    return v / np.linalg.norm(v)


def _near(rng, v, distance):
    """A point at exactly ``distance`` from ``v`` (so the door's 0.7 is never a close call)."""
    step = rng.normal(size=v.shape)
    return v + distance * step / np.linalg.norm(step)


def _triplet(rng):
    cases = []
    for m, d in ((1, 8), (int(rng.integers(2, 6)), 128), (int(rng.integers(3, 8)), 16)):
        anchor = rng.normal(size=(m, d)).astype(np.float32)
        positive = (anchor + rng.normal(scale=0.3, size=(m, d))).astype(np.float32)
        negative = (anchor + rng.normal(scale=rng.uniform(0.1, 0.6), size=(m, d))).astype(np.float32)
        alpha = float(np.round(rng.uniform(0.1, 3.0), 3))
        cases.append({"args": [None, (Tensor(anchor), Tensor(positive), Tensor(negative))], "kwargs": {"alpha": alpha}})
    return {"cases": cases, "rtol": 1e-4, "atol": 1e-4}


def _door(rng):
    """Databases, pictures and the stub encoder for verify and who_is_it."""
    d = int(rng.choice([16, 128]))
    names = list(rng.choice(NAMES, size=int(rng.integers(3, 7)), replace=False))
    database = {n: _unit(rng, d).astype(np.float32)[None] for n in names}
    table, verify, who = [], [], []
    for k in range(6):
        person = names[k % len(names)]
        distance = float(rng.uniform(0.1, 0.55) if k % 3 else rng.uniform(0.85, 1.3))  # door opens / stays shut
        path = f"images/hidden_{k}_{int(rng.integers(1e6))}.jpg"
        table.append((path, _near(rng, database[person], distance).astype(np.float32)))
        claimed = person if k % 2 == 0 else names[(k + 1) % len(names)]
        verify.append({"args": [path, claimed, database, Opaque("model")]})
        who.append({"args": [path, database, Opaque("model")]})
    stub = {"img_to_encoding": Lookup("img_to_encoding", table)}
    return ({"cases": verify, "inject": stub, "rtol": 1e-4, "atol": 1e-5},
            {"cases": who, "inject": stub, "rtol": 1e-4, "atol": 1e-5})


def cases(rng):
    verify, who_is_it = _door(rng)
    return {"triplet_loss": _triplet(rng), "verify": verify, "who_is_it": who_is_it}
