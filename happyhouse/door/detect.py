"""Faces in any photo: MTCNN detection, then crops aligned for each embedder.

    faces = detect_faces(rgb)              # every face: box, five landmarks, confidence
    crop = align_openface(rgb, faces[0])   # (96, 96, 3), eyes and nose where OpenFace puts them
    crop = crop_facenet(rgb, faces[0])     # (160, 160, 3), the box with facenet's margin
    faces, crops = face_crops(rgb, input_size=160)   # what the door uses

Pre-cropped faces (the course's 96x96 residents and camera shots) are used as they are:
a square photo no larger than 160 px whose only detected face is inside it is already an
aligned crop, and re-cropping a face that small loses detail (measured: camera_1 is then
no longer recognised). ``crop="whole"`` forces that for any photo, ``crop="align"`` never.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

#: Landmark names, as MTCNN reports them (left/right as seen in the image).
LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
#: Eye centres and nose tip in OpenFace's aligned face, as fractions of the crop side:
#: the means of its 68-point template's eye points (36-41, 42-47) and point 30, after its
#: min-max normalisation (openface/align_dlib.py, MINMAX_TEMPLATE).
OPENFACE_TEMPLATE = np.float32([[0.2774, 0.1673], [0.7061, 0.1590], [0.4921, 0.4221]])
#: facenet's margin: 44 px around a face scaled to 160 px (src/align/align_dataset_mtcnn.py);
#: here as a fraction of the face box, so it scales with the face.
FACENET_MARGIN = 44 / (160 - 44)
#: Largest side of a photo taken as already cropped to one face.
PRECROPPED_MAX_SIDE = 160
#: Larger photos are searched on a copy shrunk to this side (boxes are mapped back; crops
#: come from the full photo): a phone's 4000x3000 photo would otherwise take MTCNN seconds.
DETECT_MAX_SIDE = 1280
MIN_CONFIDENCE = 0.9
#: R-Net and O-Net batches (one row per candidate face) are padded with zeros to the next power
#: of two from this size, so their graphs see a handful of shapes: with as many shapes as candidate
#: counts, resident memory kept growing (12 MiB per 1,000 frames of a crowd against 6 padded;
#: bench/detect_memory.py). 0: no padding (the benchmark's baseline).
PAD_BATCHES_FROM = 16
CROP_MODES = ("auto", "align", "whole")
#: The two paths a face can take to the embedder, each with its own threshold
#: (``Embedder.thresholds``): "whole", the photo used as the face (the course's small
#: crops, or ``crop="whole"``); "aligned", a crop cut from a larger photo around a detected face.
CROP_KINDS = ("whole", "aligned")


class FaceNotFoundError(ValueError):
    """No face (or not the number of faces expected) in a photo."""


@dataclass(frozen=True)
class Face:
    """One detected face: ``box`` (x, y, width, height) in pixels, ``landmarks`` name -> (x, y),
    ``crop``: the path its crop took, "aligned" or "whole" (see :data:`CROP_KINDS`)."""
    box: tuple[int, int, int, int]
    confidence: float
    landmarks: dict[str, tuple[float, float]] = field(default_factory=dict)
    crop: str = "aligned"

    def to_dict(self) -> dict:
        return {"box": list(self.box), "crop": self.crop, "confidence": round(self.confidence, 4),
                "landmarks": {k: [round(v[0], 1), round(v[1], 1)] for k, v in self.landmarks.items()}}


class _CompiledStage:
    """One MTCNN stage whose network runs as a graph (tf.function) instead of eager Keras calls,
    and which receives the normalised photo as one tensor shared by the three stages (mtcnn
    hands each stage a NumPy array, copied into a new tensor by every pyramid level's resize).
    Same weights, same arithmetic, same boxes: on a 640x480 frame detection drops from about
    340 ms to about 120 ms on 2 cores (bench/results/service.json)."""

    def __init__(self, stage, patch: int | None, shared: list):
        import tensorflow as tf
        model = stage._model
        graph = tf.function(lambda x: model(x, training=False), input_signature=[
            tf.TensorSpec([None, patch, patch, 3], tf.float32)])   # one trace; PNet's size varies
        stage._model = graph if patch is None else (lambda x: padded_call(graph, x))
        self.stage, self._shared = stage, shared
        self.name, self.id = stage.name, stage.id

    def __call__(self, images_normalized, **kwargs):
        import tensorflow as tf
        boxes = kwargs.get("bboxes_batch")
        if boxes is not None and len(boxes) == 0:   # no candidates left: nothing to refine (mtcnn would
            return boxes                            # run the network on no rows and catch its error)
        last = self._shared[0]   # (array, its tensor): one tuple read, safe across threads
        if isinstance(images_normalized, np.ndarray):
            if last is None or last[0] is not images_normalized:
                last = (images_normalized, tf.convert_to_tensor(images_normalized))
                self._shared[0] = last
            images_normalized = last[1]
        return self.stage(images_normalized=images_normalized, **kwargs)


def padded_rows(n: int) -> int:
    """The batch size ``n`` candidates are padded to (see :data:`PAD_BATCHES_FROM`)."""
    if not PAD_BATCHES_FROM or n == 0:
        return n
    return max(PAD_BATCHES_FROM, 1 << (n - 1).bit_length())


def padded_call(graph, x):
    """``graph``'s outputs for ``x`` (N, P, P, 3), run on ``x`` padded with zero rows to
    :func:`padded_rows` (N) and cut back to N rows (each row's result is its own)."""
    import tensorflow as tf
    n = int(x.shape[0])
    rows = padded_rows(n)
    if rows > n:
        x = tf.concat([x, tf.zeros([rows - n, *x.shape[1:]], x.dtype)], 0)
    return tuple(out[:n] for out in graph(x))


class _Detector:
    """mtcnn's MTCNN (pinned 1.0.0) with its three stages compiled (:class:`_CompiledStage`)."""

    def __init__(self):
        from mtcnn import MTCNN  # loads TensorFlow: only when a photo needs detecting
        from mtcnn.stages import StageONet, StagePNet, StageRNet
        self._shared = [None]
        self._mtcnn = MTCNN(stages=[_CompiledStage(stage(), patch, self._shared)
                                    for stage, patch in ((StagePNet, None), (StageRNet, 24), (StageONet, 48))])

    def detect_faces(self, image: np.ndarray) -> list[dict]:
        try:
            return self._mtcnn.detect_faces(image)
        finally:
            self._shared[0] = None   # the photo's tensor is not kept between calls


@lru_cache(maxsize=1)
def detector() -> _Detector:
    """The process's MTCNN with its compiled stages, built once (detect_faces uses it)."""
    return _Detector()


def detect_faces(image: np.ndarray, min_confidence: float = MIN_CONFIDENCE) -> list[Face]:
    """Every face in ``image`` (H, W, 3) uint8 RGB, most confident first."""
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 12:
        return []  # MTCNN's smallest window is 12 px
    scale = min(1.0, DETECT_MAX_SIDE / max(image.shape[:2]))
    if scale < 1.0:
        import cv2
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    found = detector().detect_faces(np.ascontiguousarray(image))
    faces = [Face(box=tuple(int(round(v / scale)) for v in f["box"]), confidence=float(f["confidence"]),
                  landmarks={k: (float(f["keypoints"][k][0]) / scale, float(f["keypoints"][k][1]) / scale)
                             for k in LANDMARKS})
             for f in found if float(f["confidence"]) >= min_confidence]
    return sorted(faces, key=lambda f: -f.confidence)


def align_openface(image: np.ndarray, face: Face, size: int = 96) -> np.ndarray:
    """(size, size, 3) crop whose eye centres and nose tip sit on OpenFace's template."""
    import cv2
    src = np.float32([face.landmarks[k] for k in ("left_eye", "right_eye", "nose")])
    warp = cv2.getAffineTransform(src, OPENFACE_TEMPLATE * size)
    return cv2.warpAffine(image, warp, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def crop_facenet(image: np.ndarray, face: Face, size: int = 160, margin: float = FACENET_MARGIN) -> np.ndarray:
    """(size, size, 3): the face box grown by facenet's margin, resized as facenet does."""
    import cv2
    x, y, w, h = face.box
    dx, dy = w * margin / 2, h * margin / 2
    sx, sy = size / (w + 2 * dx), size / (h + 2 * dy)
    warp = np.float32([[sx, 0, -(x - dx) * sx], [0, sy, -(y - dy) * sy]])
    return cv2.warpAffine(image, warp, (size, size), flags=cv2.INTER_AREA if sx < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def is_precropped(image: np.ndarray, faces: list[Face]) -> bool:
    """True for a small square photo holding at most one face: already a face crop."""
    h, w = image.shape[:2]
    return max(h, w) <= PRECROPPED_MAX_SIDE and abs(h - w) <= 0.1 * max(h, w) and len(faces) <= 1


def face_crops(image: np.ndarray, input_size: int, crop: str = "auto",
               min_confidence: float = MIN_CONFIDENCE) -> tuple[list[Face], list[np.ndarray]]:
    """Faces in ``image`` and one crop each for an embedder taking ``input_size`` pixels.

    ``crop``: "auto" (detect; a pre-cropped photo with its one face is used whole), "align"
    (always detect and align), "whole" (the photo is one face, no detection).
    96 px embedders get OpenFace alignment, others facenet's margin crop.
    Returns (faces, crops); a whole-photo face has the full image as box, ``crop="whole"``
    and no landmarks; every other face has ``crop="aligned"``.
    """
    if crop not in CROP_MODES:
        raise ValueError(f"crop must be one of {CROP_MODES}, not {crop!r}")
    h, w = image.shape[:2]
    whole = Face(box=(0, 0, w, h), confidence=1.0, crop="whole")
    if crop == "whole":
        return [whole], [image]
    faces = detect_faces(image, min_confidence)
    if crop == "auto" and faces and is_precropped(image, faces):
        return [Face(whole.box, faces[0].confidence, faces[0].landmarks, crop="whole")], [image]
    align = align_openface if input_size <= 96 else crop_facenet
    return faces, [align(image, f, input_size) for f in faces]


def one_face(image: np.ndarray, input_size: int, crop: str = "auto", what: str = "the photo"
             ) -> tuple[Face, np.ndarray]:
    """The single face of a photo where one is expected; FaceNotFoundError otherwise."""
    faces, crops = face_crops(image, input_size, crop)
    if not faces:
        raise FaceNotFoundError(
            f"{what}: no face found (MTCNN, confidence >= {MIN_CONFIDENCE}). Use a well-lit, frontal "
            "photo where the face is at least 40 px wide, or --crop whole if it is already a face crop.")
    if len(faces) > 1:
        boxes = ", ".join(str(list(f.box)) for f in faces)
        raise FaceNotFoundError(
            f"{what}: {len(faces)} faces found (boxes x,y,w,h: {boxes}) where one is expected. "
            "Crop the photo to the one person, or use `identify` for group photos.")
    return faces[0], crops[0]
