"""The fast paths measured in bench/: style transfer's L-BFGS and bfloat16 options, the
embedders' compiled and bfloat16 runs, and the face database's in-memory exact search."""
import os

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

import nst_utils as nu  # noqa: E402
from happyhouse.precision import cpu_has_bfloat16  # noqa: E402


@pytest.fixture
def pictures(tmp_path):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:56]
    content = np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1).clip(0, 255).astype(np.uint8)
    Image.fromarray(content).save(tmp_path / "content.png")
    Image.fromarray(rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)).save(tmp_path / "style.png")
    return tmp_path / "content.png", tmp_path / "style.png"


@pytest.fixture
def problem(pictures):
    size = (32, 40)
    content = nu.reshape_and_normalize_image(pictures[0], size)
    model = nu.load_loss_network("vgg19-random", size)
    cost = nu.StyleTransferCost(model, content, nu.reshape_and_normalize_image(pictures[1], size))
    return model, cost, nu.generate_noise_image(content, seed=0)


# ------------------------------------------------------------------------ style transfer
def test_cost_object_gives_the_course_style_cost(problem):
    model, cost, start = problem
    a_G = model.activations(start, [n for n, _ in cost.style_layers])
    course = nu.compute_style_cost(cost.a_S, a_G, cost.style_layers)
    assert float(cost.style_cost(a_G)) == pytest.approx(float(course), rel=1e-5)
    J, J_content, J_style = cost(tf.constant(start))
    assert float(J_style) == pytest.approx(model.style_scale * float(course), rel=1e-5)


def test_lbfgs_lowers_the_cost_and_counts_its_work(problem):
    _, cost, start = problem
    J0 = float(cost(tf.constant(start))[0])
    result = nu.lbfgs_minimize(cost, start, max_iterations=6)
    totals = [c[0] for c in result["costs"]]
    assert result["iterations"] == len(totals) == 6
    assert result["evaluations"] >= result["iterations"]
    assert totals[-1] < 0.5 * J0 and all(b <= a for a, b in zip(totals, totals[1:]))
    assert result["image"].shape == start.shape and result["image"].dtype == np.float32
    assert float(cost(tf.constant(result["image"]))[0]) == pytest.approx(totals[-1], rel=1e-4)


def test_lbfgs_stops_at_the_target(problem):
    _, cost, start = problem
    first = nu.lbfgs_minimize(cost, start, max_iterations=8)
    target = first["costs"][2][0]
    again = nu.lbfgs_minimize(cost, start, max_iterations=8, target=target)
    assert again["iterations"] == 3 and again["costs"][-1][0] <= target


def test_model_nn_with_lbfgs_prints_saves_and_records(problem, tmp_path, capsys):
    model, cost, start = problem
    generated, history = nu.model_nn(model, start, cost, 4, optimizer="lbfgs", output_dir=tmp_path / "out",
                                     save_every=2, print_every=2, progress=False)
    assert len(history.total) == 4 and history.total[-1] < float(cost(tf.constant(start))[0])
    np.testing.assert_allclose(history.total, 10 * np.array(history.content) + 40 * np.array(history.style),
                               rtol=1e-4)
    np.testing.assert_allclose(model["input"].numpy(), generated)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png", "2.png", "generated_image.jpg"]
    printed = capsys.readouterr().out
    assert "Iteration 0 :\ntotal cost = " in printed and "Iteration 2 :" in printed


def test_bfloat16_step_follows_the_fp32_step(problem):
    import keras
    _, cost, start = problem
    results = {}
    for precision in nu.PRECISIONS:
        variable = tf.Variable(start)
        step = nu.make_train_step(cost, variable, keras.optimizers.Adam(2.0, epsilon=1e-8), precision)
        before = [float(step()[0]) for _ in range(3)]
        results[precision] = (before, variable.numpy())
    (J32, img32), (J16, img16) = results["float32"], results["bfloat16"]
    np.testing.assert_allclose(J16, J32, rtol=0.02)       # same costs to bf16's 3 digits
    # Adam moves every pixel by about 2 per step; the two runs moved them alike
    assert np.abs(img16 - img32).mean() < 0.5 and np.abs(img32 - start).mean() > 3
    assert J16[-1] < J16[0]


def test_precision_scope_is_undone_and_checked():
    key = "auto_mixed_precision_onednn_bfloat16"
    before = tf.config.optimizer.get_experimental_options().get(key, False)
    with nu.compute_precision("bfloat16"):
        assert tf.config.optimizer.get_experimental_options()[key] is True
    assert tf.config.optimizer.get_experimental_options().get(key, False) == before
    with pytest.raises(ValueError, match="precision must be one of"):
        nu.make_train_step(None, None, None, precision="float16")


def test_bad_optimizer_name(problem):
    model, cost, start = problem
    with pytest.raises(ValueError, match="optimizer must be one of"):
        nu.model_nn(model, start, cost, 2, optimizer="sgd")
    with pytest.raises(ValueError, match="L-BFGS runs in float32 only"):
        nu.model_nn(model, start, cost, 2, optimizer="lbfgs", precision="bfloat16")


def test_command_line_lbfgs_bfloat16(tmp_path, pictures, capsys):
    out = tmp_path / "painted.png"
    code = nu.main([str(pictures[0]), str(pictures[1]), "-o", str(out), "--iterations", "2", "--size", "32x40",
                    "--network", "vgg19-random", "--seed", "1", "--optimizer", "lbfgs"])
    assert code == 0 and Image.open(out).size == (40, 32)
    assert "vgg19-random: J " in capsys.readouterr().out
    code = nu.main([str(pictures[0]), str(pictures[1]), "-o", str(out), "--iterations", "2", "--size", "32x40",
                    "--network", "vgg19-random", "--precision", "bfloat16"])
    assert code == 0
    code = nu.main([str(pictures[0]), str(pictures[1]), "-o", str(out), "--iterations", "2", "--size", "32x40",
                    "--network", "vgg19-random", "--optimizer", "lbfgs", "--precision", "bfloat16"])
    assert code == 2 and "L-BFGS runs in float32 only" in capsys.readouterr().err


# ------------------------------------------------------------------------------ embedders
def test_course_model_is_compiled_once_and_sees_new_weights():
    from happyhouse.face.embedders import course_embedder
    from happyhouse.face.network import faceRecoModel

    model = faceRecoModel(input_shape=(3, 96, 96))
    first, second = course_embedder(model), course_embedder(model)
    assert first._run is second._run  # one tf.function per model, not one per call
    x = np.random.default_rng(0).random((3, 3, 96, 96)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(first._run(x)), model(x, training=False).numpy(), atol=1e-5)
    dense = model.get_layer("dense_layer")
    dense.set_weights([w * 0 + 0.01 * np.arange(w.size).reshape(w.shape) for w in dense.get_weights()])
    np.testing.assert_allclose(np.asarray(first._run(x)), model(x, training=False).numpy(), atol=1e-5)


def test_bfloat16_embedder_stays_close_to_fp32():
    from happyhouse.face.embedders import load_embedder

    fp32 = load_embedder("inception-resnet-v1")
    bf16 = load_embedder("inception-resnet-v1", precision="bfloat16")
    assert bf16.precision == "bfloat16" and fp32.precision == "float32" and bf16.model is fp32.model
    yy, xx = np.mgrid[0:160, 0:160]
    faces = np.stack([np.stack([(xx * k) % 256, (yy * 2) % 256, (xx + yy * k) % 256], -1)
                      for k in (1, 2, 3)]).astype(np.uint8)
    a, b = fp32.embed(faces), bf16.embed(faces)
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-3)
    assert np.linalg.norm(a - b, axis=1).max() < 0.05   # << the 0.7-0.9 thresholds
    if cpu_has_bfloat16():  # without AVX512-BF16/AMX, oneDNN may leave the graph in float32
        assert np.linalg.norm(a - b, axis=1).max() > 0   # it did run in another precision
    with pytest.raises(ValueError, match="precision must be one of"):
        load_embedder("inception-resnet-v1", precision="int8")


# ------------------------------------------------------------------------- face database
def test_gallery_is_kept_until_the_database_changes(tmp_path):
    from happyhouse.door import face_db

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3, 8)).astype(np.float32)
    path = tmp_path / "faces.db"
    with face_db.FaceDB(path) as db, face_db.FaceDB(path) as other:
        db.enroll("ann", vectors[:1], model="m", sources=["a"])
        first = db.gallery("m")
        assert db.gallery("m") is first                       # nothing changed: no reload
        assert db.identify(vectors[1], model="m")[0][0].name == "ann"
        db.enroll("bob", vectors[1:2], model="m", sources=["b"])          # this connection wrote
        assert db.gallery("m") is not first
        assert db.identify(vectors[1], model="m")[0][0].name == "bob"
        kept = db.gallery("m")
        other.enroll("cid", vectors[2:3], model="m", sources=["c"])       # another connection wrote
        assert db.gallery("m") is not kept
        assert db.identify(vectors[2], model="m")[0][0].name == "cid"
        other.remove("cid")
        assert [m.name for m in db.identify(vectors[2], model="m", k=3)[0]] == sorted(
            ["ann", "bob"], key=lambda n: np.linalg.norm(vectors[2] - vectors[0 if n == "ann" else 1]))


def test_gallery_search_is_exact_with_several_rows_per_person():
    from happyhouse.door import face_db

    rng = np.random.default_rng(3)
    E = rng.standard_normal((60, 16)).astype(np.float32)
    owner = rng.integers(0, 20, 60)
    names = [f"p{i}" for i in range(20)]
    queries = rng.standard_normal((7, 16)).astype(np.float32)
    idx, dist = face_db.Gallery(names, owner, E).search(queries, k=4)
    for q, row_i, row_d in zip(queries, idx, dist):
        best = {p: min(np.linalg.norm(q - E[owner == p], axis=1)) for p in set(owner)}
        expected = sorted(best, key=best.get)[:4]
        assert list(row_i) == expected
        np.testing.assert_allclose(row_d, [best[p] for p in expected], rtol=1e-5)
    one_i, one_d = face_db.Gallery(names, owner, E).search(queries, k=1)
    np.testing.assert_array_equal(one_i[:, 0], idx[:, 0])
    np.testing.assert_allclose(one_d[:, 0], dist[:, 0], rtol=1e-6)
