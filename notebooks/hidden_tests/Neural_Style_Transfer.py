"""Hidden tests of notebooks/Neural_Style_Transfer.ipynb (instructor side: `grading release` never copies them).

Drawn at grading time from the grader's seed; see happyhouse/grading/hidden.py for the values.
``compute_layer_style_cost`` is tested with the reference's ``gram_matrix`` results injected and
``compute_style_cost`` with the reference's ``compute_layer_style_cost`` results, so one mistake
costs one exercise. ``model_nn`` runs on a toy problem (a few Adam steps towards a target image).
"""
import numpy as np

from happyhouse.grading.hidden import FromReference, Tensor, ToyCost, Variable


def _activations(rng, shape):
    return (rng.normal(size=shape) * rng.uniform(0.5, 3) + rng.uniform(-1, 1)).astype(np.float32)


def _shape(rng):
    return (1, int(rng.integers(2, 6)), int(rng.integers(2, 6)), int(rng.integers(2, 8)))


def _unrolled(a):
    """(1, n_H, n_W, n_C) -> (n_C, n_H * n_W), the layout gram_matrix receives."""
    return a.reshape(-1, a.shape[-1]).T.copy()


def cases(rng):
    content = [{"args": [Tensor(_activations(rng, s)), Tensor(_activations(rng, s))]} for s in (_shape(rng), _shape(rng), _shape(rng))]

    layers = [f"conv{k}_{int(rng.integers(1, 4))}" for k in range(1, int(rng.integers(3, 5)))]
    style_layers = [(name, float(np.round(rng.uniform(0.05, 0.5), 3))) for name in layers]
    style_cases, pairs = [], []
    for _ in range(2):
        a_S, a_G = {}, {}
        for name in layers:
            s = _shape(rng)
            a_S[name], a_G[name] = _activations(rng, s), _activations(rng, s)
            pairs.append((a_S[name], a_G[name]))
        style_cases.append({"args": [{k: Tensor(v) for k, v in a_S.items()}, {k: Tensor(v) for k, v in a_G.items()},
                                     style_layers]})
    own = [(_activations(rng, s), _activations(rng, s)) for s in (_shape(rng), _shape(rng))]
    layer_cases = [{"args": [Tensor(a), Tensor(b)]} for a, b in own + pairs]

    gram_inputs = [_activations(rng, (int(rng.integers(2, 6)), int(rng.integers(1, 9)))) for _ in range(2)]
    needed = [_unrolled(a) for pair in own + pairs for a in pair]  # what the reference's layer cost passes gram_matrix
    gram_cases = [{"args": [Tensor(a)]} for a in gram_inputs + needed]

    totals = [{"args": [float(rng.normal()), float(rng.normal())]}]
    totals += [{"args": [float(rng.normal()), float(rng.normal())],
                "kwargs": {"alpha": float(np.round(rng.uniform(1, 50), 2)), "beta": float(np.round(rng.uniform(1, 50), 2))}}
               for _ in range(2)]

    shape = (1, int(rng.integers(2, 4)), int(rng.integers(2, 4)), 3)
    toy = [{"args": [{"input": Variable(np.zeros(shape, np.float32))}, rng.normal(size=shape).astype(np.float32),
                     ToyCost(rng.uniform(0, 12, size=shape).astype(np.float32), float(np.round(rng.uniform(0, 0.3), 3)))],
            "kwargs": {"num_iterations": int(rng.integers(3, 9))}}]

    return {
        "compute_content_cost": {"cases": content, "rtol": 1e-4, "atol": 1e-5},
        "gram_matrix": {"cases": gram_cases, "rtol": 1e-4, "atol": 1e-4},
        "compute_layer_style_cost": {"cases": layer_cases, "rtol": 1e-4, "atol": 1e-5,
                                     "inject": {"gram_matrix": FromReference("gram_matrix", list(range(2, 2 + len(needed))))}},
        "compute_style_cost": {"cases": style_cases, "rtol": 1e-4, "atol": 1e-5,
                               "inject": {"compute_layer_style_cost": FromReference("compute_layer_style_cost",
                                                                                    list(range(len(own), len(layer_cases))))}},
        "total_cost": {"cases": totals, "rtol": 1e-6, "atol": 1e-8},
        "model_nn": {"cases": toy, "rtol": 1e-3, "atol": 1e-3},
    }
