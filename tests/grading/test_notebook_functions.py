"""The notebooks' graded functions (the reference solutions) agree with the modules' own versions
(for style transfer: the engine's cost and loop, which compute the same in their own form).

Each function's source is taken from its ``# GRADED FUNCTION`` cell and executed with the globals
the notebook gives it; both versions then get the same random inputs.
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
from happyhouse.style import optimize  # noqa: E402
from happyhouse.style.cost import StyleTransferCost  # noqa: E402

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
    assert fr["triplet_loss"] is not fr_utils.triplet_loss and not hasattr(nst_utils, "gram_matrix")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_triplet_loss_agrees(fr, seed):
    rng = np.random.default_rng(seed)
    y_pred = [tf.constant(rng.normal(mean, 1.0, (5, 128)), tf.float32) for mean in (0.0, 0.1, 0.3)]
    for alpha in (0.2, 50.0):  # some triplets inside the margin, then all of them
        np.testing.assert_allclose(fr["triplet_loss"](None, y_pred, alpha), fr_utils.triplet_loss(None, y_pred, alpha),
                                   rtol=1e-5)


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
        for identity in database:
            with redirect_stdout(io.StringIO()):
                got, want = fr["verify"](camera, identity, database, model), fr_utils.verify(camera, identity, database, model)
            assert got[0] == pytest.approx(want[0], rel=1e-5) and got[1] == want[1]
        printed = io.StringIO()
        with redirect_stdout(printed):
            got = fr["who_is_it"](camera, database, model)
            want = fr_utils.who_is_it(camera, database, model)
        assert got[0] == pytest.approx(want[0], rel=1e-5)
        if got[0] <= 0.7:
            assert got[1] == want[1]
        else:  # the course's who_is_it still names the nearest; both say so
            assert printed.getvalue().count("Not in the database.") == 2
    assert fr["who_is_it"](near, database, model)[1] == "bob"


class _DictNetwork:
    """A loss network whose "images" are dicts {layer: activation (1, n_H, n_W, n_C)}."""
    name, content_scale, style_scale = "dict", 1.0, 1.0

    def __init__(self, style_layers):
        self.content_layer, self.style_layers = "content", style_layers

    def activations(self, image, layers):
        return {n: tf.constant(image[n], tf.float32) for n in layers}


@pytest.mark.parametrize("shape", [(1, 4, 4, 3), (1, 5, 7, 16)])
def test_style_transfer_costs_agree(nst, shape):
    """The notebook's costs and the engine's StyleTransferCost on the same activations."""
    rng = np.random.default_rng(sum(shape))
    a, b, c = (tf.constant(rng.normal(1, 4, shape), tf.float32) for _ in range(3))
    layers = [("one", 0.3), ("two", 0.7)]
    engine = StyleTransferCost(_DictNetwork(layers), {"content": a}, {"one": a, "two": b}, alpha=10, beta=40)
    J, J_content, J_style = engine({"content": b, "one": b, "two": c})
    np.testing.assert_allclose(nst["compute_content_cost"](a, b), J_content, rtol=1e-5)
    A = tf.transpose(tf.reshape(a, [-1, shape[-1]]))  # (n_C, n_H*n_W), as the course unrolls
    np.testing.assert_allclose(nst["gram_matrix"](A), engine._G_S["one"], rtol=1e-5)
    single = StyleTransferCost(_DictNetwork([("one", 1.0)]), {"content": a}, {"one": a})({"content": a, "one": b})[2]
    np.testing.assert_allclose(nst["compute_layer_style_cost"](a, b), single, rtol=1e-5)
    a_S, a_G = {"one": a, "two": b}, {"one": b, "two": c}
    np.testing.assert_allclose(nst["compute_style_cost"](a_S, a_G, layers), J_style, rtol=1e-5)
    np.testing.assert_allclose(nst["total_cost"](J_content, J_style), J, rtol=1e-5)
    J1 = StyleTransferCost(_DictNetwork(layers), {"content": a}, {"one": a, "two": b}, alpha=1, beta=2)(
        {"content": b, "one": b, "two": c})[0]
    np.testing.assert_allclose(nst["total_cost"](J_content, J_style, 1, 2), J1, rtol=1e-5)


class _ToyNetwork(dict):
    """Just enough of a LossNetwork for the engine's loop: model["input"], a name, a size."""
    name = "toy"

    def set_input_size(self, height, width):
        self["input"] = tf.Variable(tf.zeros((1, height, width, 3)))


def test_model_nn_agrees(nst, tmp_path):
    rng = np.random.default_rng(4)
    target = tf.constant(rng.normal(size=(1, 3, 5, 3)), tf.float32)

    def cost(image):
        J_content = tf.reduce_mean(tf.square(image - target))
        J_style = tf.reduce_mean(tf.square(image))
        return J_content + 0.1 * J_style, J_content, J_style

    start = rng.normal(size=(1, 3, 5, 3)).astype(np.float32)
    toy = _ToyNetwork()
    toy.set_input_size(3, 5)
    printed = io.StringIO()
    with redirect_stdout(printed):
        ours = nst["model_nn"](toy, start, cost, num_iterations=25, output_dir=tmp_path)
        theirs, history = optimize.optimise(_ToyNetwork(), start, cost, 25, optimize.LoopOptions(progress=False))
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    assert printed.getvalue().count("Iteration 20 :") == 2
    assert (tmp_path / "20.png").is_file() and (tmp_path / "generated_image.jpg").is_file()
    assert float(cost(ours)[0]) < 0.5 * float(cost(start)[0])
