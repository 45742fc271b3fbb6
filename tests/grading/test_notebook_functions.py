"""The notebooks' graded functions (the reference solutions) compute what the course's formulas say.

Each function's source is taken from its ``# GRADED FUNCTION`` cell and executed with the globals
the notebook gives it, then checked against the formula written here in numpy (no module of the
project holds a graded function: the solutions live only in the reference notebooks).
"""
import io
from contextlib import redirect_stdout
from pathlib import Path

import nbformat
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import fr_utils  # noqa: E402
import nst_utils  # noqa: E402
from happyhouse.grading.release import graded_function  # noqa: E402

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def notebook_functions(notebook: str, **given) -> dict:
    """The namespace after running every GRADED FUNCTION cell of ``notebook`` (with ``given`` globals)."""
    namespace = {"np": np, "tf": tf, **given}
    nb = nbformat.read(NOTEBOOKS / notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and graded_function(cell.source):
            exec(compile(cell.source, f"{notebook}:{graded_function(cell.source)}", "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def fr():
    return notebook_functions("Face_Recognition.ipynb", img_to_encoding=fr_utils.img_to_encoding)


@pytest.fixture(scope="module")
def nst():
    return notebook_functions("Neural_Style_Transfer.ipynb", STYLE_LAYERS=nst_utils.STYLE_LAYERS,
                              make_train_step=nst_utils.make_train_step, save_image=nst_utils.save_image)


def test_every_graded_function_is_defined_in_its_notebook(fr, nst):
    assert {"triplet_loss", "verify", "who_is_it"} <= set(fr)
    assert {"compute_content_cost", "gram_matrix", "compute_layer_style_cost", "compute_style_cost",
            "total_cost", "model_nn"} <= set(nst)
    graded = ("triplet_loss", "verify", "who_is_it", "compute_content_cost", "gram_matrix",
              "compute_layer_style_cost", "compute_style_cost", "total_cost", "model_nn")
    assert not [name for name in graded for module in (fr_utils, nst_utils) if hasattr(module, name)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_triplet_loss_agrees(fr, seed):
    rng = np.random.default_rng(seed)
    y_pred = [tf.constant(rng.normal(mean, 1.0, (5, 128)), tf.float32) for mean in (0.0, 0.1, 0.3)]
    for alpha in (0.2, 50.0):  # some triplets inside the margin, then all of them
        anchor, positive, negative = (y.numpy().astype(np.float64) for y in y_pred)
        want = np.maximum(((anchor - positive) ** 2).sum(-1) - ((anchor - negative) ** 2).sum(-1) + alpha, 0).sum()
        np.testing.assert_allclose(fr["triplet_loss"](None, y_pred, alpha), want, rtol=1e-5)


def _fake_embedder(dim=8):
    """An Embedder that encodes a 4x4 image as its first ``dim`` pixels, unit-normalised."""
    def run(batch):
        flat = batch.reshape(len(batch), -1)[:, :dim]
        return flat / np.linalg.norm(flat, axis=1, keepdims=True)
    return fr_utils.Embedder("fake", 4, dim, 0.7, "test embedder", None, lambda b: b.astype(np.float32), run)


def test_verify_and_who_is_it_agree(fr):
    rng = np.random.default_rng(3)
    model = _fake_embedder()
    images = {name: rng.integers(1, 256, (4, 4, 3), dtype=np.uint8) for name in ("ann", "bob", "cyd")}
    database = {name: fr_utils.img_to_encoding(image, model) for name, image in images.items()}
    near = images["bob"].copy()
    near[0, 0, 0] = near[0, 0, 0] // 2 + 1                      # close to bob: accepted
    far = rng.integers(1, 256, (4, 4, 3), dtype=np.uint8)        # a stranger
    for camera in (near, far, images["ann"]):
        encoding = fr_utils.img_to_encoding(camera, model)
        distances = {name: float(np.linalg.norm(encoding - database[name])) for name in database}
        for identity in database:
            with redirect_stdout(io.StringIO()):
                dist, door_open = fr["verify"](camera, identity, database, model)
            assert dist == pytest.approx(distances[identity], rel=1e-5) and door_open == (distances[identity] < 0.7)
        printed = io.StringIO()
        with redirect_stdout(printed):
            min_dist, identity = fr["who_is_it"](camera, database, model)
        assert min_dist == pytest.approx(min(distances.values()), rel=1e-5)
        if min_dist <= 0.7:
            assert identity == min(distances, key=distances.get)
        else:  # the course's who_is_it still returns the nearest, and says the face is unknown
            assert printed.getvalue().count("Not in the database.") == 1
    assert fr["who_is_it"](near, database, model)[1] == "bob"


@pytest.mark.parametrize("shape", [(1, 4, 4, 3), (1, 5, 7, 16)])
def test_style_transfer_costs_agree(nst, shape):
    rng = np.random.default_rng(sum(shape))
    a, b = (tf.constant(rng.normal(1, 4, shape), tf.float32) for _ in range(2))
    _, n_H, n_W, n_C = shape

    def content_cost(x, y):
        return ((x.numpy().astype(np.float64) - y.numpy()) ** 2).sum() / (4 * n_H * n_W * n_C)

    def layer_style_cost(x, y):
        gx, gy = (g.T @ g for g in (v.numpy().astype(np.float64).reshape(-1, n_C) for v in (x, y)))
        return ((gx - gy) ** 2).sum() / (4 * n_C ** 2 * (n_H * n_W) ** 2)

    np.testing.assert_allclose(nst["compute_content_cost"](a, b), content_cost(a, b), rtol=1e-5)
    A = tf.reshape(a, [shape[-1], -1])
    np.testing.assert_allclose(nst["gram_matrix"](A), A.numpy() @ A.numpy().T, rtol=1e-5)
    np.testing.assert_allclose(nst["compute_layer_style_cost"](a, b), layer_style_cost(a, b), rtol=1e-5)
    layers = [("one", 0.3), ("two", 0.7)]
    a_S = {"one": a, "two": b}
    a_G = {"one": b, "two": tf.constant(rng.normal(0, 1, shape), tf.float32)}
    want = sum(coeff * layer_style_cost(a_S[name], a_G[name]) for name, coeff in layers)
    np.testing.assert_allclose(nst["compute_style_cost"](a_S, a_G, layers), want, rtol=1e-5)
    J_content, J_style = rng.normal(size=2)
    assert nst["total_cost"](J_content, J_style) == pytest.approx(10 * J_content + 40 * J_style)
    assert nst["total_cost"](J_content, J_style, 1, 2) == pytest.approx(J_content + 2 * J_style)


def adam_steps(cost, start, steps):
    """The course's optimisation written out: Adam (learning rate 2, epsilon 1e-8) on the image."""
    image = tf.Variable(start)
    optimizer = tf.keras.optimizers.Adam(learning_rate=2.0, epsilon=1e-8)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            J = cost(image)[0]
        optimizer.apply_gradients([(tape.gradient(J, image), image)])
    return image.numpy()


def test_model_nn_agrees(nst, tmp_path):
    rng = np.random.default_rng(4)
    target = tf.constant(rng.normal(size=(1, 3, 5, 3)), tf.float32)

    def cost(image):
        J_content = tf.reduce_mean(tf.square(image - target))
        J_style = tf.reduce_mean(tf.square(image))
        return J_content + 0.1 * J_style, J_content, J_style

    start = rng.normal(size=(1, 3, 5, 3)).astype(np.float32)
    toy = {"input": tf.Variable(tf.zeros((1, 3, 5, 3)))}
    printed = io.StringIO()
    with redirect_stdout(printed):
        ours = nst["model_nn"](toy, start, cost, num_iterations=25, output_dir=tmp_path)
    np.testing.assert_allclose(ours, adam_steps(cost, start, 25), rtol=1e-4, atol=1e-5)
    assert printed.getvalue().count("Iteration 20 :") == 1
    assert (tmp_path / "20.png").is_file() and (tmp_path / "generated_image.jpg").is_file()
    assert float(cost(ours)[0]) < 0.5 * float(cost(start)[0])
