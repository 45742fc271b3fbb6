"""dlib's `face_recognition` side of bench/door_accuracy.py, run in the interpreter where it installs
(its own venv: docs/door.md, "Compared with dlib"). Standalone: imports only numpy and face_recognition.

    python bench/dlib_embed.py < request.npz > answer.npz      # both streamed, nothing written

Request (an .npz on stdin): ``image_<k>`` (H, W, 3) uint8 RGB photos and ``box_<k>`` (4,) the face
the project's detector found in it (x, y, w, h). Answer (an .npz on stdout): ``vectors`` (n, 128)
float64 and ``found`` (n,) bool: whether dlib's own HOG detector (LARGE_FACE_PX: at which scales) found
that face (it overlaps the box by IoU >= 0.3; in a photo used whole, its largest face); when it did not, the face is encoded in the box made
square as dlib's detector boxes are, so both sides judge the same faces.
"""
from __future__ import annotations

import io
import sys

import numpy as np

#: Overlap (intersection over union) for dlib's detection to count as the project's face.
MIN_IOU = 0.3
#: Faces at least this large are searched at dlib's own scale first (its HOG finds faces from about
#: 80 px), smaller ones upsampled once, then twice (as face_recognition's number_of_times_to_upsample).
LARGE_FACE_PX = 80


def iou(a: tuple, b: tuple) -> float:
    """Intersection over union of two (top, right, bottom, left) boxes."""
    top, bottom = max(a[0], b[0]), min(a[2], b[2])
    left, right = max(a[3], b[3]), min(a[1], b[1])
    inter = max(0, bottom - top) * max(0, right - left)
    area = (a[2] - a[0]) * (a[1] - a[3]) + (b[2] - b[0]) * (b[1] - b[3])
    return inter / max(area - inter, 1)


def square(box: np.ndarray, shape: tuple) -> tuple:
    """The project's (x, y, w, h) box as a square (top, right, bottom, left) inside an image of ``shape``."""
    x, y, w, h = (float(v) for v in box)
    side, cx, cy = max(w, h), x + w / 2, y + h / 2
    top, left = max(0, int(cy - side / 2)), max(0, int(cx - side / 2))
    return top, min(shape[1], int(cx + side / 2)), min(shape[0], int(cy + side / 2)), left


def locate(image: np.ndarray, box: np.ndarray) -> tuple[tuple, bool]:
    """(dlib's (top, right, bottom, left) box for the project's face, whether dlib's detector found it)."""
    import face_recognition
    want = square(box, image.shape)
    whole = want == (0, image.shape[1], image.shape[0], 0)    # a photo used whole: its face is smaller
    for upsample in ((0, 1) if min(box[2:]) >= LARGE_FACE_PX and not whole else (1, 2)):
        found = face_recognition.face_locations(image, number_of_times_to_upsample=upsample)
        score = (lambda loc: (loc[2] - loc[0]) * (loc[1] - loc[3])) if whole else (lambda loc: iou(loc, want))
        best = max(found, key=score, default=None)
        if best is not None and (whole or iou(best, want) >= MIN_IOU):
            return best, True
    return want, False


def embed(image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, bool]:
    """dlib's 128-d encoding of the face at ``box`` in ``image`` (H, W, 3), and whether dlib found it."""
    import face_recognition
    location, found = locate(image, box)
    vector = face_recognition.face_encodings(np.ascontiguousarray(image), [location])[0]
    return np.asarray(vector, np.float64), found


def main() -> None:
    request = np.load(io.BytesIO(sys.stdin.buffer.read()))
    count = len([k for k in request.files if k.startswith("image_")])
    pairs = [embed(request[f"image_{k}"], request[f"box_{k}"]) for k in range(count)]
    out = io.BytesIO()
    np.savez(out, vectors=np.array([v for v, _ in pairs]).reshape(count, 128),
             found=np.array([f for _, f in pairs], bool))
    sys.stdout.buffer.write(out.getvalue())


if __name__ == "__main__":
    main()
