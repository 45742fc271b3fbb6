"""The public cohort: faces of strangers an enrolment photo must not lie close to.

Built at run time from what the project may ship, never from the course's or ../shared's photos:
scikit-image's sample data (pinned in requirements.txt): ``astronaut`` (Eileen Collins, NASA,
public domain), ``camera`` (CC0; used when MTCNN finds its face) and the 100 faces of
``lfw_subset`` (25x25 grey crops of Labeled Faces in the Wild, used whole), plus an optional
folder of the user's own photos of strangers (``--cohort DIR``, one face per photo). Nothing is
written to disk; the embeddings are kept in memory per process (the service computes them once).

    names, owner, E = cohort_gallery(embedder, folder=None)   # E (n, dim), names "cohort:..."
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

#: Faces of lfw_subset used (the array's first 100 images are faces, the rest background).
LFW_FACES = 100
_CACHE: dict = {}


class CohortError(ValueError):
    """The cohort folder given cannot be used; the message says why."""


def public_faces(input_size: int) -> list[tuple[str, np.ndarray]]:
    """(name, face crop (input_size, input_size, 3)) of scikit-image's sample faces; [] without it."""
    import cv2
    try:
        import skimage.data
    except ImportError:
        print("note: scikit-image is not installed: the enrolment checks compare with enrolled people only.",
              file=sys.stderr)
        return []
    from happyhouse.door.detect import face_crops
    out = []
    for name, image in (("astronaut", skimage.data.astronaut()), ("camera", skimage.data.camera())):
        rgb = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        faces, crops = face_crops(np.ascontiguousarray(rgb[..., :3]), input_size, "align")
        out += [(f"cohort:{name}", crops[0])] if faces else []
    lfw = skimage.data.lfw_subset()[:LFW_FACES]
    lfw = np.clip(lfw * 255.0 if lfw.max() <= 1.0 else lfw, 0, 255).astype(np.uint8)
    for i, face in enumerate(lfw):
        rgb = cv2.cvtColor(face, cv2.COLOR_GRAY2RGB)
        out.append((f"cohort:lfw{i}", cv2.resize(rgb, (input_size, input_size), interpolation=cv2.INTER_CUBIC)))
    return out


def folder_faces(folder: Path, input_size: int) -> list[tuple[str, np.ndarray]]:
    """(name, crop) of every photo in ``folder`` with exactly one face (others skipped with a note)."""
    from happyhouse.door.detect import FaceNotFoundError, one_face
    from happyhouse.image_io import ImageReadError, read_rgb
    folder = Path(folder)
    if not folder.is_dir():
        raise CohortError(f"--cohort {folder}: not a folder. Give a folder of photos of strangers (one face each).")
    out = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        try:
            out.append((f"cohort:{path.name}", one_face(read_rgb(path), input_size, "align", str(path))[1]))
        except (ImageReadError, FaceNotFoundError) as err:
            print(f"note: cohort photo skipped: {err}", file=sys.stderr)
    return out


def cohort_gallery(embedder, folder: Path | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The cohort as (names (p,), owner (n,), E (n, dim)) for ``embedder``; computed once per process."""
    key = (embedder.name, str(folder))
    if key not in _CACHE:
        faces = public_faces(embedder.input_size) + (folder_faces(folder, embedder.input_size) if folder else [])
        E = embedder.embed([c for _, c in faces]) if faces else np.zeros((0, embedder.dim), np.float32)
        names = [n for n, _ in faces]
        _CACHE[key] = (names, np.arange(len(names), dtype=np.int64), np.asarray(E, np.float32))
    return _CACHE[key]
