"""What the door does with a photo, shared by the command line (cli) and the HTTP service:
find faces and embed them, then enrol, verify or identify, returning the JSON payload and the
text line the CLI prints. Errors are the CLI's exceptions and messages.
"""
from __future__ import annotations

import sys

import numpy as np

from happyhouse import runtime
from happyhouse.door import face_db
from happyhouse.door.detect import FaceNotFoundError, face_crops, one_face
from happyhouse.face import embedders
from happyhouse.face.thresholds import threshold_for


class UsageError(ValueError):
    """A mistake in what the user asked for (reported in one line, exit 2)."""


def load_embedder(name: str):
    """The face embedder ``name``, with TensorFlow's start-up chatter kept off the terminal."""
    runtime.import_tensorflow()
    return embedders.load_embedder(name)


def progress_bar(items, desc: str, unit: str = "photo"):
    """tqdm over ``items`` on stderr (no bar for a single item)."""
    from tqdm import tqdm
    return tqdm(items, desc=desc, unit=unit, file=sys.stderr, disable=None if len(items) > 1 else True)


def face_threshold(embedder, crop: str, threshold: float | None = None) -> tuple[float, str]:
    """(threshold, where it came from) for a face whose crop took path ``crop`` ("whole"/"aligned"):
    ``threshold`` if given (--threshold), else the model's default for that path."""
    if threshold is not None:
        return float(threshold), "--threshold"
    return threshold_for(embedder, crop), f"model default for {crop} crops"


def embed_single_faces(embedder, images: list[np.ndarray], whats: list[str], crop: str = "auto",
                       progress: bool = False) -> tuple[list, np.ndarray]:
    """Exactly one face per image (H, W, 3) -> (faces, embeddings (n, dim)); ``whats`` name the photos."""
    pairs = list(zip(images, whats))
    faces = [one_face(img, embedder.input_size, crop, what=what)
             for img, what in (progress_bar(pairs, "detecting") if progress else pairs)]
    return [f for f, _ in faces], embedder.embed([c for _, c in faces])


def embed_all_faces(embedder, image: np.ndarray, what: str, crop: str = "auto") -> tuple[list, np.ndarray]:
    """Every face in ``image`` (H, W, 3) -> (faces, embeddings (m, dim)); FaceNotFoundError if none."""
    faces, crops = face_crops(image, embedder.input_size, crop)
    if not faces:
        raise FaceNotFoundError(f"{what}: no face found. Use a well-lit, frontal photo, "
                                "or --crop whole if it is already a face crop.")
    return faces, embedder.embed(crops)


def require_someone(db: face_db.FaceDB) -> None:
    """FaceDBError when nobody is enrolled (before any model is loaded)."""
    if not db.names():
        raise face_db.FaceDBError(f"{db.path}: nobody is enrolled yet. Enrol people first "
                                  "(`enroll NAME PHOTO...`).")


def refuse_duplicate(db: face_db.FaceDB, name: str, add: bool) -> None:
    """DuplicateEnrollmentError when ``name`` is enrolled and ``add`` is false (fail fast)."""
    if name in db.names() and not add:
        raise face_db.DuplicateEnrollmentError(
            f"{name!r} is already enrolled in {db.path}. Nothing was stored. To add photos use "
            f"`enroll --add {name} PHOTO...`; to start over, `remove {name}` first.")


def enroll_result(db: face_db.FaceDB, name: str, vectors: np.ndarray, model: str, hashes: list[str],
                  add: bool = False) -> tuple[dict, str]:
    """Store ``vectors`` (n, dim) for ``name`` in one transaction -> (JSON payload, text line)."""
    count = db.enroll(name, vectors, model, hashes, add=add)
    return ({"enrolled": name, "embeddings": count, "model": model, "db": str(db.path)},
            f"enrolled {name}: {count} photo{'s' * (count != 1)} ({model}) in {db.path}")


def verify_result(db: face_db.FaceDB, name: str, face, vector: np.ndarray, embedder,
                  threshold: float | None = None) -> tuple[dict, str, bool]:
    """Is ``vector`` (dim,) ``name``? -> (JSON payload, text line, match)."""
    distance = db.distance(name, vector, embedder.name)
    limit, source = face_threshold(embedder, face.crop, threshold)
    match = distance < limit
    verdict = f"it's {name}, welcome in!" if match else f"it's not {name}, please go away"
    return ({"name": name, "distance": round(distance, 4), "threshold": limit, "threshold_from": source,
             "crop": face.crop, "match": match, "model": embedder.name, "face": face.to_dict()},
            f"{verdict} (distance {distance:.3f} {'<' if match else '>='} threshold {limit:g}, {face.crop} crop)",
            match)


def identify_result(db: face_db.FaceDB, photo: str, faces: list, vectors: np.ndarray, embedder,
                    threshold: float | None = None, top_k: int = 3) -> tuple[dict, str, bool]:
    """Name each face (embeddings (m, dim)) -> (JSON payload, text lines, someone known)."""
    if top_k < 1:
        raise UsageError(f"--top-k must be at least 1, not {top_k}.")
    rows, lines = [], []
    for face, matches in zip(faces, db.identify(vectors, embedder.name, k=top_k)):
        best = matches[0]
        limit, source = face_threshold(embedder, face.crop, threshold)
        name = best.name if best.distance < limit else "unknown"
        rows.append({"name": name, "distance": round(best.distance, 4), "threshold": limit,
                     "threshold_from": source, "crop": face.crop, "face": face.to_dict(),
                     "candidates": [{"name": m.name, "distance": round(m.distance, 4)} for m in matches]})
        lines.append(f"{name}\t{best.distance:.3f}\tbox {list(face.box)}\t{face.crop} crop, threshold {limit:g}"
                     + ("" if name != "unknown" else f"\t(nearest: {best.name})"))
    known = any(r["name"] != "unknown" for r in rows)
    return {"photo": photo, "model": embedder.name, "faces": rows}, "\n".join(lines), known
