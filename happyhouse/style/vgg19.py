"""VGG-19, the course's loss network: its ImageNet weights from MatConvNet's .mat or Keras'
notop .h5 (both readers check every layer), where to find the file, how to fetch it, and the
network itself with average pooling (or random He-normal weights, no file needed)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from happyhouse import data
from happyhouse.errors import WeightsError
from happyhouse.style.network import (VGG19_BLOCKS, VGG19_CONVS, VGG19_LAYERS, VGG_CONTENT_LAYER, VGG_STYLE_LAYERS,
                                      LossNetwork, build_vgg, keras_features)

MAT_NAME = "imagenet-vgg-verydeep-19.mat"
H5_NAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
#: Keras' download of VGG-19's convolution weights and its md5 (keras/applications/vgg19.py).
H5_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/vgg19/" + H5_NAME)
H5_MD5 = "253f8cb515780f3b799900260a226db6"
MAT_URL = "https://www.vlfeat.org/matconvnet/models/" + MAT_NAME
#: Cost scales (content, style) of the random network, into VGG-19's units: measured with
#: networks.measure_cost_scales on louvre_small + monet (the course's starting costs).
RANDOM_VGG19_SCALES = (11.6, 13.6)


def set_vgg19_weights(model, weights: dict, source: str) -> None:
    """Fill ``model`` from ``weights``: conv name -> (kernel (3, 3, in, out), bias (out,))."""
    for name in VGG19_CONVS:
        if name not in weights:
            raise WeightsError(f"{source}: no weights for layer {name}; this is not a complete VGG-19 "
                               "weights file. Get the right file (see pretrained-model/README.md).")
        kernel, bias = layer_arrays(weights[name], source, name)
        layer = model.get_layer(name)
        expected = tuple(layer.kernel.shape)
        bias = bias.reshape(-1)
        if kernel.shape != expected or bias.shape != (expected[-1],):
            raise WeightsError(f"{source}: layer {name} has kernel {kernel.shape} and bias {bias.shape}; "
                               f"VGG-19 needs {expected} and ({expected[-1]},). Wrong or corrupt file.")
        layer.set_weights([kernel, bias])


def layer_arrays(kernel_and_bias, source: str, name: str) -> tuple:
    """(kernel, bias) of layer ``name`` as float32 arrays; WeightsError naming ``source`` and the layer
    where they are not numbers or not all finite."""
    try:
        kernel, bias = (np.asarray(w, dtype=np.float32) for w in kernel_and_bias)
    except (ValueError, TypeError) as err:
        raise WeightsError(f"{source}: layer {name} does not hold numbers ({err}). Wrong or corrupt file; "
                           "get the right one (see pretrained-model/README.md).") from None
    if not (np.isfinite(kernel).all() and np.isfinite(bias).all()):
        raise WeightsError(f"{source}: layer {name} holds NaN or infinite weights. Corrupt file; "
                           "get it again (see pretrained-model/README.md).")
    return kernel, bias


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
        if not isinstance(root, h5py.Group):
            raise WeightsError(f"{path}: 'model_weights' is not a group of layers; not Keras' VGG-19 weights.")
        for b, n, _ in VGG19_BLOCKS:
            for i in range(1, n + 1):
                group_name = f"block{b}_conv{i}"
                if group_name not in root:
                    raise WeightsError(f"{path}: no group {group_name!r}; not Keras' VGG-19 weights "
                                       f"(groups: {', '.join(list(root)[:6])}...).")
                group = root[group_name]
                if not isinstance(group, h5py.Group):
                    raise WeightsError(f"{path}: {group_name!r} is not a group holding a kernel and a bias; "
                                       "not Keras' VGG-19 weights.")
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
    by name. Raises data.DataNotFoundError naming the files and the folders searched."""
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
            raise data.DataNotFoundError(
                f"VGG-19 weights file {str(path)!r} was not found. To get it: "
                f"{data.HOW_TO_GET['pretrained-model']}.")
    for name in names:
        try:
            return data.find_file("pretrained-model", name, root=root)
        except data.DataNotFoundError:
            pass
    looked = [r / "pretrained-model" for r in data.data_roots(root)]
    env = os.environ.get(data.ENV_VAR)
    raise data.DataNotFoundError(
        f"No VGG-19 weights ({MAT_NAME} or {H5_NAME}) in "
        f"{', '.join(str(p) for p in looked)} ({data.ENV_VAR}={env or 'not set'}). "
        f"To get them: {data.HOW_TO_GET['pretrained-model']}.")


def vgg19_network(path=None, height=300, width=400, random_seed=None) -> LossNetwork:
    """VGG-19 with average pooling as a :class:`LossNetwork`.

    Weights from ``path`` (a .mat or .h5 file, or a folder holding one; default: the data
    lookup), or random He-normal weights when ``random_seed`` is given (no file needed).
    """
    if random_seed is None:
        file = find_vgg19_weights(path)  # before building: a missing file costs nothing
        keras_model = build_vgg(kernel_initializer="zeros")  # no random draw the file overwrites
        set_vgg19_weights(keras_model, read_vgg19_weights(file), str(file))
        name, description = "vgg19", f"VGG-19, ImageNet weights from {file}"
        scales = (1.0, 1.0)
    else:
        keras_model = build_vgg(seed=random_seed)
        name = "vgg19-random"
        description = (f"VGG-19 with random He-normal weights (seed {random_seed}), average pooling; "
                       "costs scaled to VGG-19's units")
        scales = RANDOM_VGG19_SCALES
    return LossNetwork(name, keras_features(keras_model), VGG19_LAYERS, VGG_CONTENT_LAYER, VGG_STYLE_LAYERS,
                       description, height, width, *scales)


def fetch_vgg19_weights(folder=None) -> Path:
    """Download Keras' VGG-19 notop weights (80 MB, md5-checked, progress bar) into
    ``folder`` (default: the project's pretrained-model/). Raises WeightsError when offline."""
    import keras
    folder = Path(folder) if folder is not None else data.PROJECT_ROOT / "pretrained-model"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return Path(keras.utils.get_file(H5_NAME, H5_URL, file_hash=H5_MD5,
                                         cache_dir=str(folder), cache_subdir=str(folder.resolve())))
    except Exception as err:
        raise WeightsError(
            f"Could not download {H5_NAME} from {H5_URL} ({type(err).__name__}: {err}). Without a network, "
            f"copy that file (md5 {H5_MD5}) or {MAT_NAME} ({MAT_URL}) into {folder} by hand, "
            f"or point {data.ENV_VAR} at a folder holding pretrained-model/.") from None
