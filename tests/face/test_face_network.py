"""The course's Inception FaceNet (happyhouse.face.network, inception_blocks_v2): shapes, size, names, unit-norm output."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from happyhouse.face.network import faceRecoModel
from happyhouse.face.weights import WEIGHTS, conv_shape


@pytest.fixture(scope="module")
def model():
    return faceRecoModel(input_shape=(3, 96, 96))


def test_parameter_count_is_the_courses(model):
    assert model.count_params() == 3743280


def test_channels_first_batch_in_unit_norm_encodings_out(model):
    images = np.random.default_rng(0).random((3, 3, 96, 96), dtype=np.float32)
    encodings = np.asarray(model(images, training=False))
    assert model.input_shape == (None, 3, 96, 96)
    assert encodings.shape == (3, 128)
    np.testing.assert_allclose(np.linalg.norm(encodings, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(encodings[0], encodings[1])  # different faces, different encodings


def test_layers_with_weights_are_exactly_the_courses_weight_names(model):
    named = [layer.name for layer in model.layers if layer.weights]
    assert sorted(named) == sorted(WEIGHTS)


def test_layer_shapes_match_the_courses_conv_table(model):
    for name, (out, cin, kh, kw) in conv_shape.items():
        kernel, bias = model.get_layer(name).get_weights()
        assert kernel.shape == (kh, kw, cin, out), name
        assert bias.shape == (out,)
    assert model.get_layer("dense_layer").get_weights()[0].shape == (736, 128)


def test_first_batch_norm_keeps_keras_default_epsilon_like_the_course(model):
    assert model.get_layer("bn1").epsilon == pytest.approx(1e-3)
    assert model.get_layer("bn2").epsilon == pytest.approx(1e-5)
    assert model.get_layer("inception_5b_1x1_bn").epsilon == pytest.approx(1e-5)


def test_other_input_shapes_are_refused_with_a_clear_error():
    with pytest.raises(ValueError, match=r"\(3, 96, 96\)"):
        faceRecoModel(input_shape=(96, 96, 3))


def _channels_first_twin(model):
    """The same network built channels-first, as the course builds it (Permute -> Identity)."""
    import keras

    def clone(layer):
        if isinstance(layer, keras.layers.Permute):
            return keras.layers.Identity(name=layer.name)
        config = layer.get_config()
        if "data_format" in config:
            config["data_format"] = "channels_first"
        if isinstance(layer, (keras.layers.BatchNormalization, keras.layers.Concatenate)):
            config["axis"] = 1
        return layer.__class__.from_config(config)

    twin = keras.models.clone_model(model, clone_function=clone)
    for ours, theirs in zip(model.layers, twin.layers):
        theirs.set_weights(ours.get_weights())
    return twin


def nchw_convolutions_run_here() -> bool:
    """TensorFlow's own CPU kernels take NHWC only; oneDNN's (on by default on Intel CPUs, opt-in
    elsewhere with TF_ENABLE_ONEDNN_OPTS=1) take NCHW too."""
    try:
        tf.nn.conv2d(tf.zeros([1, 1, 4, 4]), tf.zeros([1, 1, 1, 1]), 1, "SAME", data_format="NCHW")
        return True
    except (tf.errors.UnimplementedError, tf.errors.InvalidArgumentError):
        return False


def test_channels_last_build_computes_what_the_channels_first_course_model_computes(model):
    if not nchw_convolutions_run_here():  # run this test again where a literal NCHW model can run
        name = f"{__file__}::test_channels_last_build_computes_what_the_channels_first_course_model_computes"
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-o", "addopts=", "-p", "no:cacheprovider", name],
                             env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1"}, capture_output=True, text=True)
        assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout[-3000:] + run.stderr[-2000:]
        return
    rng = np.random.default_rng(1)
    for layer in model.layers:
        weights = [rng.normal(0, 0.1, w.shape).astype(np.float32) for w in layer.get_weights()]
        if len(weights) == 4:  # batch norm: positive variance
            weights[3] = np.abs(weights[3]) + 0.5
        layer.set_weights(weights)
    twin = _channels_first_twin(model)
    assert twin.get_layer("conv1").data_format == "channels_first"
    images = rng.random((2, 3, 96, 96), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(model(images, training=False)),
                               np.asarray(twin(images, training=False)), atol=1e-6)
