"""The engine's cost (StyleTransferCost): hand-worked content, Gram and style costs, the layer
weights, alpha and beta, and the course's test draws giving the course's numbers."""
import numpy as np
import pytest
import tensorflow as tf

from happyhouse.style.cost import StyleTransferCost


class DictNetwork:
    """A loss network whose "images" are dicts {layer: activation (1, n_H, n_W, n_C)}."""
    name, content_scale, style_scale = "dict", 1.0, 1.0

    def __init__(self, content_layer="c", style_layers=(("s", 1.0),)):
        self.content_layer, self.style_layers = content_layer, list(style_layers)

    def activations(self, image, layers):
        return {n: tf.constant(image[n], tf.float32) for n in layers}


def costs(content, style, generated, network=None, **kw):
    """(J, J_content, J_style) as floats."""
    network = network or DictNetwork()
    return tuple(float(v) for v in StyleTransferCost(network, content, style, **kw)(generated))


def test_content_cost_hand_worked():
    a_C = np.ones((1, 2, 2, 1), np.float32)
    a_G = np.zeros((1, 2, 2, 1), np.float32)
    a_G[0, 0, 0, 0] = 3.0  # differences: -2, 1, 1, 1 -> squares sum 7
    zero = np.zeros((1, 1, 1, 1), np.float32)
    _, J_content, _ = costs({"c": a_C}, {"s": zero}, {"c": a_G, "s": zero})
    assert J_content == pytest.approx(7 / (4 * 2 * 2 * 1))


def test_gram_matrix_hand_worked():
    # two positions with channels (1, 3) and (2, 4): the Gram of channels is [[5, 11], [11, 25]]
    a_S = np.array([[[[1.0, 3.0], [2.0, 4.0]]]], np.float32)  # (1, 1, 2, 2)
    cost = StyleTransferCost(DictNetwork(), {"c": a_S}, {"s": a_S})
    np.testing.assert_array_equal(cost._G_S["s"].numpy(), [[5.0, 11.0], [11.0, 25.0]])


def test_layer_style_cost_unrolls_channels_as_the_course():
    # two pixels with channels (1, 2) and (3, 4): A = [[1, 3], [2, 4]], G = [[10, 14], [14, 20]]
    a_S = np.array([[[[1.0, 2.0], [3.0, 4.0]]]], np.float32)  # (1, 1, 2, 2)
    a_G = np.zeros_like(a_S)
    expected = (10 ** 2 + 2 * 14 ** 2 + 20 ** 2) / (4 * 2 ** 2 * 2 ** 2)
    assert costs({"c": a_S}, {"s": a_S}, {"c": a_S, "s": a_G})[2] == pytest.approx(expected)
    assert costs({"c": a_S}, {"s": a_S}, {"c": a_S, "s": a_S})[2] == 0.0


def test_style_cost_weights_the_layers():
    a_S = {"a": np.array([[[[1.0, 2.0], [3.0, 4.0]]]], np.float32), "b": np.ones((1, 1, 1, 1), np.float32)}
    a_G = {k: np.zeros_like(v) for k, v in a_S.items()}
    network = DictNetwork("a", [("a", 0.5), ("b", 2.0)])
    J_style = costs(a_S, a_S, a_G, network)[2]
    assert J_style == pytest.approx(0.5 * 892 / 64 + 2.0 * 1 / 4)


def test_total_cost_weights_content_and_style():
    a_C, a_G = np.ones((1, 2, 2, 1), np.float32), np.zeros((1, 2, 2, 1), np.float32)
    image = {"c": a_C, "s": a_C}
    J, J_content, J_style = costs(image, image, {"c": a_G, "s": a_G})
    assert J_content > 0 and J_style > 0
    assert J == pytest.approx(10 * J_content + 40 * J_style)
    J, J_content, _ = costs(image, image, {"c": a_G, "s": a_G}, alpha=1, beta=0)
    assert J == pytest.approx(J_content)


def _course_draws(shapes_and_seeds):
    """The course's test draws (TF1 graph mode, graph seed 1, the measured op seeds) as arrays."""
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(1)
        tensors = [tf.random.normal(shape, mean=1, stddev=4, seed=seed) for shape, seed in shapes_and_seeds]
        with tf.compat.v1.Session() as sess:
            return sess.run(tensors)


def test_the_course_draws_give_the_course_numbers():
    a_C, a_G = _course_draws([([1, 4, 4, 3], 3), ([1, 4, 4, 3], 9)])
    zero = np.zeros((1, 1, 1, 3), np.float32)
    _, J_content, _ = costs({"c": a_C}, {"s": zero}, {"c": a_G, "s": zero})
    assert f"{J_content:.6g}" == "6.76559"
    a_S, a_G = _course_draws([([1, 4, 4, 3], 3), ([1, 4, 4, 3], 9)])  # a fresh draw
    _, _, J_style_layer = costs({"c": a_S}, {"s": a_S}, {"c": a_S, "s": a_G})
    assert f"{J_style_layer:.6g}" == "9.19028"
