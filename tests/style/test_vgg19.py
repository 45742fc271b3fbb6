"""Loss networks: VGG-19 read from files written here in MatConvNet's and Keras' layouts,
the course's layer shapes, the offline FaceNet network, and every bad weights file."""
import os

import h5py
import numpy as np
import pytest
import scipy.io

from happyhouse import data
from happyhouse.errors import WeightsError
from happyhouse.style import facenet, networks, transfer, vgg19

CHANNELS = {f"conv{b}_{i}": (64 if b == 1 else 128 if b == 2 else 256 if b == 3 else 512)
            for b, n, _ in vgg19.VGG19_BLOCKS for i in range(1, n + 1)}


def _in_channels(name):
    names = list(vgg19.VGG19_CONVS)
    k = names.index(name)
    return 3 if k == 0 else CHANNELS[names[k - 1]]


@pytest.fixture(scope="module")
def weights():
    """VGG-19-shaped conv weights: block 1 random, deeper kernels zero (their activations are
    then relu(bias), which checks every layer's place), every bias distinct."""
    rng = np.random.default_rng(0)
    out = {}
    for name in vgg19.VGG19_CONVS:
        shape = (3, 3, _in_channels(name), CHANNELS[name])
        kernel = rng.normal(0, 0.2, shape) if name.startswith("conv1") else np.zeros(shape)
        out[name] = (kernel.astype(np.float32), rng.uniform(-0.5, 1.0, CHANNELS[name]).astype(np.float32))
    return out


def write_matconvnet(path, weights, layers=None):
    """A .mat laid out as imagenet-vgg-verydeep-19.mat: layers{i} structs with name, type,
    weights = {W, b}, relu and pool layers in between (the course reads [0][i][0][0][2][0][0])."""
    entries = []
    for name in vgg19.VGG19_CONVS:
        W, b = weights[name]
        cell = np.empty((1, 2), dtype=object)
        cell[0, 0], cell[0, 1] = W, b.reshape(-1, 1)
        entries.append({"name": name, "type": "conv", "weights": cell, "stride": np.array([[1, 1]])})
        entries.append({"name": "relu" + name[4:], "type": "relu"})
        if name.endswith(("1_2", "2_2", "3_4", "4_4", "5_4")):
            entries.append({"name": "pool" + name[4], "type": "pool"})
    cells = np.empty((1, len(entries)), dtype=object)
    for i, entry in enumerate(entries):
        cells[0, i] = entry
    scipy.io.savemat(path, {"layers": cells if layers is None else layers,
                            "meta": {"normalization": {"averageImage": [123.68, 116.779, 103.939]}}},
                     do_compression=True)


def write_keras_h5(path, weights, style="keras2"):
    """An .h5 laid out as Keras' vgg19_..._notop.h5: root attribute layer_names, one group per
    layer with attribute weight_names naming its datasets (kernel (3, 3, in, out), bias)."""
    with h5py.File(path, "w") as f:
        layer_names = ["input_1"]
        for b, n, _ in vgg19.VGG19_BLOCKS:
            layer_names += [f"block{b}_conv{i}" for i in range(1, n + 1)] + [f"block{b}_pool"]
        f.attrs["layer_names"] = [s.encode() for s in layer_names]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.0.8"
        for layer in layer_names:
            group = f.create_group(layer)
            names = []
            if "conv" in layer:
                b, i = layer[5], layer[-1]
                kernel, bias = weights[f"conv{b}_{i}"]
                names = ([f"{layer}_W_1:0", f"{layer}_b_1:0"] if style == "keras2"
                         else [f"{layer}/kernel:0", f"{layer}/bias:0"])
                group.create_dataset(names[0], data=kernel, compression="gzip")
                group.create_dataset(names[1], data=bias)
            group.attrs["weight_names"] = [s.encode() for s in names]


def conv_relu(x, kernel, bias):
    """Hand-computed 3x3 SAME convolution + ReLU: x (H, W, C_in) -> (H, W, C_out)."""
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(0, 1))  # H, W, C, 3, 3
    return np.maximum(np.einsum("hwcij,ijco->hwo", windows, kernel) + bias, 0)


def check_activations(model, weights, bgr=False):
    rng = np.random.default_rng(1)
    x = rng.normal(0, 50, (1, 8, 12, 3)).astype(np.float32)
    model.set_input_size(8, 12)
    model["input"].assign(x)
    conv1_1 = conv_relu(x[0, :, :, ::-1] if bgr else x[0], *weights["conv1_1"])
    np.testing.assert_allclose(model["conv1_1"].numpy()[0], conv1_1, rtol=1e-4, atol=1e-3)
    conv1_2 = conv_relu(conv1_1, *weights["conv1_2"])
    np.testing.assert_allclose(model["conv1_2"].numpy()[0], conv1_2, rtol=1e-4, atol=1e-2)
    pool1 = conv1_2.reshape(4, 2, 6, 2, 64).mean(axis=(1, 3))
    np.testing.assert_allclose(model["avgpool1"].numpy()[0], pool1, rtol=1e-4, atol=1e-2)
    for name in ("conv2_1", "conv3_3", "conv4_2", "conv5_4"):  # zero kernels: relu(bias)
        expected = np.maximum(weights[name][1], 0)
        np.testing.assert_allclose(model[name].numpy()[0, 0, 0], expected, rtol=1e-5, atol=1e-6)


def test_matconvnet_file_gives_hand_computed_activations(tmp_path, weights):
    path = tmp_path / vgg19.MAT_NAME
    write_matconvnet(path, weights)
    model = vgg19.vgg19_network(path, 8, 12)
    assert model.name == "vgg19" and str(path) in model.description
    check_activations(model, weights)


@pytest.mark.parametrize("style", ["keras2", "tf.keras"])
def test_keras_h5_file_gives_hand_computed_activations_on_rgb(tmp_path, weights, style):
    path = tmp_path / vgg19.H5_NAME
    write_keras_h5(path, weights, style)
    model = vgg19.vgg19_network(path, 8, 12)
    check_activations(model, weights, bgr=True)  # Caffe's BGR kernels now take RGB


def test_lookup_finds_h5_under_course_data(tmp_path, weights, monkeypatch):
    (tmp_path / "pretrained-model").mkdir()
    write_keras_h5(tmp_path / "pretrained-model" / vgg19.H5_NAME, weights)
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    assert vgg19.find_vgg19_weights("pretrained-model/" + vgg19.MAT_NAME) == \
        tmp_path / "pretrained-model" / vgg19.H5_NAME
    model = networks.load_loss_network("auto", size=(8, 12))
    assert model.name == "vgg19"
    rng = np.random.default_rng(3)  # the same style_transfer call that falls back offline elsewhere
    picture, history = transfer.style_transfer(
        rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
        network="auto", iterations=2, size=(16, 16), output_dir=False, print_every=0, progress=False)
    assert history.network == "vgg19" and picture.shape == (16, 16, 3)


def test_random_vgg19_has_the_course_layer_shapes():
    model = vgg19.vgg19_network(height=300, width=400, random_seed=0)
    shapes = model.shapes()
    assert list(shapes) == list(vgg19.VGG19_LAYERS)
    assert shapes["input"] == (1, 300, 400, 3)
    assert shapes["conv1_1"] == (1, 300, 400, 64)
    assert shapes["avgpool3"] == (1, 38, 50, 256)
    assert shapes["conv4_2"] == (1, 38, 50, 512)
    assert shapes["conv5_4"] == (1, 19, 25, 512)
    assert shapes["avgpool5"] == (1, 10, 13, 512)
    # average pooling, not max pooling
    conv = model["conv1_2"].numpy()
    np.testing.assert_allclose(model["avgpool1"].numpy(), conv.reshape(1, 150, 2, 200, 2, 64).mean(axis=(2, 4)),
                               rtol=1e-5, atol=1e-5)


def test_offline_facenet_network_reaches_the_input():
    import tensorflow as tf
    model = facenet.facenet_network(height=120, width=160)
    x = tf.Variable(tf.random.normal((1, 120, 160, 3), stddev=40.0, seed=1))
    with tf.GradientTape() as tape:
        acts = model.activations(x, [model.content_layer] + [n for n, _ in model.style_layers])
        loss = sum(tf.reduce_mean(a) for a in acts.values())
    grad = tape.gradient(loss, x)
    assert grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0
    assert acts["Mixed_6a"].shape[-1] == 896 and acts["Conv2d_1a_3x3"].shape[-1] == 32


def test_offline_network_refuses_too_small_images():
    with pytest.raises(ValueError, match="at least 96 pixels a side, got 64x64"):
        facenet.facenet_network(height=64, width=64)
    with pytest.raises(ValueError, match="at least 96 pixels a side, got 300x50"):
        networks.load_loss_network("facenet", size=(300, 50))


# ---------------------------------------------------------------------------- bad weights
def test_missing_weights_say_which_files_where_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setattr(data, "PROJECT_ROOT", tmp_path)
    with pytest.raises(data.DataNotFoundError) as err:
        vgg19.vgg19_network()
    message = str(err.value)
    for part in (vgg19.MAT_NAME, vgg19.H5_NAME, str(tmp_path / "nowhere" / "pretrained-model"),
                 "--fetch-vgg"):
        assert part in message


def test_explicit_missing_file_is_named(tmp_path):
    with pytest.raises(data.DataNotFoundError, match="my-vgg.mat"):
        vgg19.vgg19_network(tmp_path / "my-vgg.mat")


def test_wrong_kind_of_file(tmp_path):
    path = tmp_path / vgg19.MAT_NAME
    path.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(WeightsError, match="neither a MATLAB .mat file nor an HDF5"):
        vgg19.vgg19_network(path)


def test_corrupt_mat_file(tmp_path):
    path = tmp_path / vgg19.MAT_NAME
    path.write_bytes(b"MATLAB 5.0 MAT-file" + b"\0" * 200 + os.urandom(300))
    with pytest.raises(WeightsError, match=vgg19.MAT_NAME):
        vgg19.vgg19_network(path)


def test_mat_file_without_layers(tmp_path):
    path = tmp_path / "other.mat"
    scipy.io.savemat(path, {"net": np.zeros(3)})
    with pytest.raises(WeightsError, match="without a 'layers' struct"):
        vgg19.vgg19_network(path)


def test_mat_file_with_wrong_shapes(tmp_path, weights):
    bad = dict(weights, conv3_2=(np.zeros((3, 3, 256, 128), np.float32), np.zeros(128, np.float32)))
    path = tmp_path / "bad.mat"
    write_matconvnet(path, bad)
    with pytest.raises(WeightsError, match=r"conv3_2 has kernel \(3, 3, 256, 128\)"):
        vgg19.vgg19_network(path)


def test_truncated_h5_file(tmp_path, weights):
    good = tmp_path / "good.h5"
    write_keras_h5(good, weights)
    path = tmp_path / vgg19.H5_NAME
    path.write_bytes(good.read_bytes()[:4000])
    with pytest.raises(WeightsError, match="truncated"):
        vgg19.vgg19_network(path)


def test_h5_file_of_another_network(tmp_path):
    path = tmp_path / "resnet.h5"
    with h5py.File(path, "w") as f:
        f.create_group("conv1").attrs["weight_names"] = [b"conv1/kernel:0"]
    with pytest.raises(WeightsError, match="no group 'block1_conv1'"):
        vgg19.vgg19_network(path)


def test_fetch_offline_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(vgg19, "H5_URL", "http://127.0.0.1:9/" + vgg19.H5_NAME)
    with pytest.raises(WeightsError) as err:
        vgg19.fetch_vgg19_weights(tmp_path)
    message = str(err.value)
    assert vgg19.H5_NAME in message and str(tmp_path) in message and vgg19.H5_MD5 in message
    assert not (tmp_path / vgg19.H5_NAME).exists()


def test_non_finite_weights_are_refused_naming_file_and_layer(tmp_path, weights):
    """A NaN kernel would paint a blank picture and exit 0: refused when the file is read."""
    path = tmp_path / "nan.h5"
    write_keras_h5(path, dict(weights, conv3_1=(np.full_like(weights["conv3_1"][0], np.nan), weights["conv3_1"][1])))
    with pytest.raises(WeightsError, match=r"nan\.h5: layer conv3_1 holds NaN or infinite weights"):
        vgg19.vgg19_network(path)


def test_h5_whose_model_weights_is_a_dataset(tmp_path):
    path = tmp_path / "dsroot.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("model_weights", data=np.zeros(10))
    with pytest.raises(WeightsError, match=r"dsroot\.h5: 'model_weights' is not a group"):
        vgg19.vgg19_network(path)


def test_mat_whose_weights_are_strings_names_file_and_layer(tmp_path, weights):
    path = tmp_path / "strings.mat"
    write_matconvnet(path, dict(weights, conv1_1=(np.array(["abc"]), weights["conv1_1"][1])))
    with pytest.raises(WeightsError, match=r"strings\.mat: layer conv1_1 does not hold numbers"):
        vgg19.vgg19_network(path)
