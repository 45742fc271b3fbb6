"""The course's FaceNet weights: 224 CSV files (one per array, Torch layout), parsed once into a cache.

``load_weights()`` -> ``{layer: [arrays in Keras layout]}``; ``set_weights(model, weights)`` checks
every layer's shapes before setting any. Problems raise :class:`happyhouse.errors.WeightsError`
listing every missing and damaged file.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np

from happyhouse import data
from happyhouse.errors import WeightsError

#: Layers with weights, in the course's order (one CSV per array: ``<layer>_w.csv`` ...).
WEIGHTS = [
    'conv1', 'bn1', 'conv2', 'bn2', 'conv3', 'bn3',
    'inception_3a_1x1_conv', 'inception_3a_1x1_bn',
    'inception_3a_pool_conv', 'inception_3a_pool_bn',
    'inception_3a_5x5_conv1', 'inception_3a_5x5_conv2', 'inception_3a_5x5_bn1', 'inception_3a_5x5_bn2',
    'inception_3a_3x3_conv1', 'inception_3a_3x3_conv2', 'inception_3a_3x3_bn1', 'inception_3a_3x3_bn2',
    'inception_3b_3x3_conv1', 'inception_3b_3x3_conv2', 'inception_3b_3x3_bn1', 'inception_3b_3x3_bn2',
    'inception_3b_5x5_conv1', 'inception_3b_5x5_conv2', 'inception_3b_5x5_bn1', 'inception_3b_5x5_bn2',
    'inception_3b_pool_conv', 'inception_3b_pool_bn',
    'inception_3b_1x1_conv', 'inception_3b_1x1_bn',
    'inception_3c_3x3_conv1', 'inception_3c_3x3_conv2', 'inception_3c_3x3_bn1', 'inception_3c_3x3_bn2',
    'inception_3c_5x5_conv1', 'inception_3c_5x5_conv2', 'inception_3c_5x5_bn1', 'inception_3c_5x5_bn2',
    'inception_4a_3x3_conv1', 'inception_4a_3x3_conv2', 'inception_4a_3x3_bn1', 'inception_4a_3x3_bn2',
    'inception_4a_5x5_conv1', 'inception_4a_5x5_conv2', 'inception_4a_5x5_bn1', 'inception_4a_5x5_bn2',
    'inception_4a_pool_conv', 'inception_4a_pool_bn',
    'inception_4a_1x1_conv', 'inception_4a_1x1_bn',
    'inception_4e_3x3_conv1', 'inception_4e_3x3_conv2', 'inception_4e_3x3_bn1', 'inception_4e_3x3_bn2',
    'inception_4e_5x5_conv1', 'inception_4e_5x5_conv2', 'inception_4e_5x5_bn1', 'inception_4e_5x5_bn2',
    'inception_5a_3x3_conv1', 'inception_5a_3x3_conv2', 'inception_5a_3x3_bn1', 'inception_5a_3x3_bn2',
    'inception_5a_pool_conv', 'inception_5a_pool_bn',
    'inception_5a_1x1_conv', 'inception_5a_1x1_bn',
    'inception_5b_3x3_conv1', 'inception_5b_3x3_conv2', 'inception_5b_3x3_bn1', 'inception_5b_3x3_bn2',
    'inception_5b_pool_conv', 'inception_5b_pool_bn',
    'inception_5b_1x1_conv', 'inception_5b_1x1_bn',
    'dense_layer',
]

#: Convolution kernels as exported from Torch: (out, in, kh, kw).
conv_shape = {
    'conv1': [64, 3, 7, 7],
    'conv2': [64, 64, 1, 1],
    'conv3': [192, 64, 3, 3],
    'inception_3a_1x1_conv': [64, 192, 1, 1],
    'inception_3a_pool_conv': [32, 192, 1, 1],
    'inception_3a_5x5_conv1': [16, 192, 1, 1],
    'inception_3a_5x5_conv2': [32, 16, 5, 5],
    'inception_3a_3x3_conv1': [96, 192, 1, 1],
    'inception_3a_3x3_conv2': [128, 96, 3, 3],
    'inception_3b_3x3_conv1': [96, 256, 1, 1],
    'inception_3b_3x3_conv2': [128, 96, 3, 3],
    'inception_3b_5x5_conv1': [32, 256, 1, 1],
    'inception_3b_5x5_conv2': [64, 32, 5, 5],
    'inception_3b_pool_conv': [64, 256, 1, 1],
    'inception_3b_1x1_conv': [64, 256, 1, 1],
    'inception_3c_3x3_conv1': [128, 320, 1, 1],
    'inception_3c_3x3_conv2': [256, 128, 3, 3],
    'inception_3c_5x5_conv1': [32, 320, 1, 1],
    'inception_3c_5x5_conv2': [64, 32, 5, 5],
    'inception_4a_3x3_conv1': [96, 640, 1, 1],
    'inception_4a_3x3_conv2': [192, 96, 3, 3],
    'inception_4a_5x5_conv1': [32, 640, 1, 1],
    'inception_4a_5x5_conv2': [64, 32, 5, 5],
    'inception_4a_pool_conv': [128, 640, 1, 1],
    'inception_4a_1x1_conv': [256, 640, 1, 1],
    'inception_4e_3x3_conv1': [160, 640, 1, 1],
    'inception_4e_3x3_conv2': [256, 160, 3, 3],
    'inception_4e_5x5_conv1': [64, 640, 1, 1],
    'inception_4e_5x5_conv2': [128, 64, 5, 5],
    'inception_5a_3x3_conv1': [96, 1024, 1, 1],
    'inception_5a_3x3_conv2': [384, 96, 3, 3],
    'inception_5a_pool_conv': [96, 1024, 1, 1],
    'inception_5a_1x1_conv': [256, 1024, 1, 1],
    'inception_5b_3x3_conv1': [96, 736, 1, 1],
    'inception_5b_3x3_conv2': [384, 96, 3, 3],
    'inception_5b_pool_conv': [96, 736, 1, 1],
    'inception_5b_1x1_conv': [256, 736, 1, 1],
}

#: Dense layer as exported from Torch: (out, in).
DENSE_SHAPE = (128, 736)


def weight_files() -> dict[str, tuple[int, ...]]:
    """Every CSV the course model needs (224), mapped to its array shape in the CSV's layout."""
    files = {}
    for layer in WEIGHTS:
        if "conv" in layer:
            files[f"{layer}_w.csv"] = tuple(conv_shape[layer])
            files[f"{layer}_b.csv"] = (conv_shape[layer][0],)
        elif "bn" in layer:
            channels = conv_shape[re.sub(r"bn(\d*)$", r"conv\1", layer)][0]
            for part in "wbmv":  # gamma, beta, moving mean, moving variance
                files[f"{layer}_{part}.csv"] = (channels,)
        else:  # dense_layer: the course names its files dense_w.csv / dense_b.csv
            files["dense_w.csv"] = DENSE_SHAPE
            files["dense_b.csv"] = (DENSE_SHAPE[0],)
    return files


def layer_files(layer: str) -> list[str]:
    if "conv" in layer:
        return [f"{layer}_w.csv", f"{layer}_b.csv"]
    if "bn" in layer:
        return [f"{layer}_{part}.csv" for part in "wbmv"]
    return ["dense_w.csv", "dense_b.csv"]


def _to_keras(layer: str, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Course CSV layout -> Keras layout: conv (out,in,kh,kw) -> (kh,kw,in,out); dense (out,in) -> (in,out)."""
    if "conv" in layer:
        return [np.transpose(arrays[0], (2, 3, 1, 0)), arrays[1]]
    if layer == "dense_layer":
        return [arrays[0].T, arrays[1]]
    return arrays


def read_csv(path, shape: tuple[int, ...]):
    """One CSV (a path, or a binary file object) -> (array of ``shape``, None) or (None, what is wrong)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            values = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=1).ravel()
        except UserWarning:  # numpy warns "input contained no data"
            return None, "an empty file"
        except ValueError as err:
            return None, f"text that is not comma-separated numbers ({err})"
        except OSError as err:
            return None, f"a file that cannot be read ({err})"
    if values.size != int(np.prod(shape)):
        return None, f"{values.size} values"
    if not np.all(np.isfinite(values)):
        return None, "nan or inf values"
    return values.reshape(shape).astype(np.float32), None


def checksum(folder: Path, names, contents: dict | None = None) -> str:
    """sha256 over the named files (their bytes from ``contents`` where given, else read)."""
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0")
        digest.update(contents[name] if contents is not None else (folder / name).read_bytes())
    return digest.hexdigest()


def _keras_shapes(expected: dict) -> dict[str, list[tuple]]:
    """Layer -> the shapes of its arrays in Keras layout."""
    return {layer: [a.shape for a in _to_keras(layer, [np.empty(expected[f], np.float32) for f in layer_files(layer)])]
            for layer in WEIGHTS}


def _read_cache(path: Path, expected: dict) -> dict | None:
    """The cached weights, or None when the cache file is unreadable or does not fit."""
    shapes = _keras_shapes(expected)
    try:
        with np.load(path) as stored:
            weights = {layer: [stored[f"{layer}:{i}"] for i in range(len(shapes[layer]))] for layer in WEIGHTS}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):
        return None
    if any([w.shape for w in weights[layer]] != shapes[layer] for layer in WEIGHTS):
        return None
    return weights


def _write_cache(path: Path, weights: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
        np.savez(tmp, **{f"{layer}:{i}": w for layer, arrays in weights.items() for i, w in enumerate(arrays)})
        os.replace(tmp, path)
    except OSError as err:  # a read-only home must not stop the door
        warnings.warn(f"could not write the weights cache {path} ({err}); the next load will parse the CSVs again.")


def load_weights(weights_dir=None, cache_dir=None) -> dict[str, list[np.ndarray]]:
    """The course's weights as ``{layer name: [arrays in Keras layout]}``.

    Each CSV is taken from ``weights_dir`` when given, else from the first weights/ folder of the
    data lookup that has it (so a partial ``$COURSE_DATA`` and the files ``fetch`` added to the
    project complete each other). The first load parses the CSVs and writes one ``.npz`` into the
    user cache (``$XDG_CACHE_HOME/happyhouse``, default ``~/.cache/happyhouse``), named by the
    checksum of the CSVs; later loads hash the CSVs (a changed file is never served stale) and
    read that file instead of parsing them. Raises :class:`WeightsError` listing every missing
    and every damaged file.
    """
    folders = data.find_folders("weights", weights_dir)
    expected = weight_files()
    paths = {name: next((f / name for f in folders if (f / name).is_file()), None) for name in expected}
    missing = [name for name, path in paths.items() if path is None]
    present = [name for name, path in paths.items() if path is not None]
    cache, contents = None, {}
    if not missing:
        try:  # every file is read once: hashed here, parsed below on a cache miss
            contents = {name: paths[name].read_bytes() for name in present}
            cache = data.cache_folder(cache_dir) / f"nn4.small2-{checksum(folders[0], present, contents)[:24]}.npz"
        except OSError:  # an unreadable file: parsing below reports it
            cache, contents = None, {}
        weights = _read_cache(cache, expected) if cache is not None and cache.is_file() else None
        if weights is not None:
            return weights

    arrays, mismatches = {}, []
    for name in present:
        source = io.BytesIO(contents[name]) if name in contents else paths[name]
        arrays[name], problem = read_csv(source, expected[name])
        if problem:
            mismatches.append((name, expected[name], problem))
    if missing or mismatches:
        raise _weights_error(folders, len(expected), missing, mismatches)
    weights = {layer: _to_keras(layer, [arrays[f] for f in layer_files(layer)]) for layer in WEIGHTS}
    if cache is not None:
        _write_cache(cache, weights)
    return weights


def _weights_error(folders, total, missing, mismatches) -> WeightsError:
    folder = folders[0]
    where = " and ".join(display_path(f) for f in folders)
    lines = [f"The course's FaceNet weights in {where} are incomplete or damaged, so no weights were "
             f"loaded (the model is unchanged)."]
    if missing:
        lines.append(f"Missing ({len(missing)} of {total}): " + ", ".join(missing) + ".")
    for name, shape, found in mismatches:
        lines.append(f"Damaged: {name}: expected shape {shape} ({int(np.prod(shape))} values), found {found}.")
    lines.append("To fix: run `python -m fr_utils fetch` where a network is reachable, or copy the complete "
                 "weights/ folder (224 CSVs) and point COURSE_DATA at its parent; meanwhile "
                 "load_embedder('inception-resnet-v1') works offline.")
    return WeightsError("\n".join(lines), folder=folder, missing=missing, mismatches=mismatches)


def set_weights(model, weights: dict):
    """Check every layer's shapes, then set them all (or raise WeightsError, model untouched); returns ``model``.

    ``model``: the course's network (:func:`happyhouse.face.network.faceRecoModel`); ``weights``: from
    :func:`load_weights`.
    """
    layers = {layer.name: layer for layer in model.layers}  # one lookup table: get_layer scans every layer
    problems = []
    for layer, arrays in weights.items():
        if layer not in layers:
            problems.append(f"the model has no layer named {layer!r}")
            continue
        have = [tuple(w.shape) for w in layers[layer].weights]
        if have != [a.shape for a in arrays]:
            problems.append(f"layer {layer!r} has weight shapes {have}, the files give {[a.shape for a in arrays]}")
    if problems:
        raise WeightsError("The model does not match the course's FaceNet (build it with "
                           "inception_blocks_v2.faceRecoModel((3, 96, 96))): " + "; ".join(problems) + ".")
    for layer, arrays in weights.items():
        layers[layer].set_weights(arrays)
    return model


def display_path(path) -> str:
    """``path`` as messages show it: ``$COURSE_DATA/...``, ``<project>/...`` or ``~/...`` where it lies
    there (so a committed output names no folder of the machine), else as it is."""
    path = Path(path)
    roots = (("$COURSE_DATA", os.environ.get(data.ENV_VAR)), ("<project>", data.PROJECT_ROOT),
             ("~", Path.home()))
    for shown, root in roots:
        if not root:
            continue
        try:
            return f"{shown}/{path.resolve().relative_to(Path(root).resolve())}"
        except (ValueError, OSError):
            continue
    return str(path)
