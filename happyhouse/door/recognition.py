"""What the door does with a photo, shared by the command line (cli) and the HTTP service:
find faces and embed them, then enrol, verify or identify, returning the JSON payload and the
text line the CLI prints. Errors are the CLI's exceptions and messages.
"""
from __future__ import annotations

import json
import sys

import numpy as np

from happyhouse import runtime
from happyhouse.door import decision, enrolment, face_db
from happyhouse.door.detect import FaceNotFoundError, face_crops, one_face
from happyhouse.face import embedders
from happyhouse.face.thresholds import hub_threshold, threshold_for


class UsageError(ValueError):
    """A mistake in what the user asked for (reported in one line, exit 2)."""


class EnrolmentRefused(ValueError):
    """Photos failed the enrolment checks; ``checks`` holds every photo's report (nothing stored)."""

    def __init__(self, message: str, checks: list):
        super().__init__(message)
        self.checks = checks


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


def embed_all_faces(embedder, image: np.ndarray, what: str, crop: str = "auto",
                    max_faces: int | None = None) -> tuple[list, np.ndarray]:
    """Every face in ``image`` (H, W, 3), or its ``max_faces`` largest -> (faces, embeddings (m, dim));
    FaceNotFoundError if none."""
    faces, crops = face_crops(image, embedder.input_size, crop)
    if not faces:
        raise FaceNotFoundError(f"{what}: no face found. Use a well-lit, frontal photo, "
                                "or --crop whole if it is already a face crop.")
    if max_faces is not None and len(faces) > max_faces:
        keep = sorted(np.argsort([-f.box[2] * f.box[3] for f in faces], kind="stable")[:max_faces])
        faces, crops = [faces[i] for i in keep], [crops[i] for i in keep]
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
    db.require(name, embedder.name)
    limit, source, found = judge(db, name, face, vector, embedder, threshold)
    match = found.accepted
    verdict = f"it's {name}, welcome in!" if match else f"it's not {name}, please go away"
    return ({"name": name, "distance": round(found.distance, 4), "threshold": limit, "threshold_from": source,
             "crop": face.crop, "match": match, "model": embedder.name, "face": face.to_dict(),
             "decision": found.to_dict()},
            f"{verdict} (distance {found.distance:.3f}{compared_with(found, limit)}, {face.crop} crop; {found.reason})",
            match)


def decided_limit(found, limit: float) -> float:
    """The threshold that decided ``found`` (a photo stored whole: its own path's), else the face's ``limit``."""
    return found.limit if found.limit is not None else limit


def compared_with(found, limit: float) -> str:
    """' < threshold T' / ' >= threshold T' with :func:`decided_limit`; '' where none decided (a face
    too small to decide)."""
    decided = decided_limit(found, limit)
    if not decided:
        return ""
    return f" {'<' if found.distance < decided else '>='} threshold {decided:g}"


def judge(db: face_db.FaceDB, name: str, face, vector: np.ndarray, embedder, threshold: float | None = None):
    """(threshold, its source, decision.Decision) for ``face`` (embedding (dim,)) against ``name``'s photos.
    A photo that failed the checks or was never audited (no verdict) is doubtful (decision.decide); each
    photo is compared at the stricter of the face's threshold and its own crop path's (decision.row_limits).
    A face too small to decide gets threshold 0 and a refusal saying so; where the crop path has a
    margin (decision.query_margin), the next person must lie that much farther."""
    ids, E = db.person_rows(name, embedder.name, embedder.dim)
    distances = np.linalg.norm(E - np.asarray(vector, np.float32)[None, :], axis=1)
    try:
        limit, source = decision.query_threshold(embedder, face, face_threshold(embedder, face.crop), threshold)
    except decision.TooSmallToDecide as err:
        return 0.0, "too small to decide", decision.Decision(False, float(distances.min()), str(err), [])
    checks = db.checks(ids)
    doubtful = np.array([checks.get(int(i), (None,))[0] != face_db.CHECKED for i in ids], bool)
    limits = decision.row_limits(embedder, limit, row_paths(checks, ids), threshold)
    found, margin = decision.decide(distances, doubtful, limits), decision.query_margin(embedder, face)
    return limit, source, decision.over_next(found, rival_distance(db, name, vector, embedder) if margin else None,
                                             margin)


def rival_distance(db: face_db.FaceDB, name: str, vector: np.ndarray, embedder) -> float | None:
    """The distance from ``vector`` (dim,) to the nearest photo of anyone but ``name`` (None: nobody else)."""
    matches = db.identify(np.asarray(vector, np.float32)[None, :], embedder.name, k=2)[0]
    return next((m.distance for m in matches if m.name != name), None)


def identify_result(db: face_db.FaceDB, photo: str, faces: list, vectors: np.ndarray, embedder,
                    threshold: float | None = None, top_k: int = 3) -> tuple[dict, str, bool]:
    """Name each face (embeddings (m, dim)) -> (JSON payload, text lines, someone known)."""
    if top_k < 1:
        raise UsageError(f"--top-k must be at least 1, not {top_k}.")
    rows, lines = [], []
    for face, vector, matches in zip(faces, vectors, db.identify(vectors, embedder.name, k=top_k)):
        best = matches[0]
        limit, source, found = judge(db, best.name, face, vector, embedder, threshold)
        name = best.name if found.accepted else "unknown"
        rows.append({"name": name, "distance": round(best.distance, 4), "threshold": limit,
                     "threshold_from": source, "crop": face.crop, "face": face.to_dict(),
                     "decision": {**found.to_dict(), "person": best.name},
                     "candidates": [{"name": m.name, "distance": round(m.distance, 4)} for m in matches]})
        lines.append(f"{name}\t{best.distance:.3f}\tbox {list(face.box)}\t{face.crop} crop, "
                     f"threshold {decided_limit(found, limit):g}"
                     + ("" if name != "unknown" else f"\t(nearest: {best.name}; {found.reason})"))
    known = any(r["name"] != "unknown" for r in rows)
    return {"photo": photo, "model": embedder.name, "faces": rows}, "\n".join(lines), known


# -- enrolment checks and audits (happyhouse/door/enrolment.py) ---------------------------
#: A first-open audit of more rows than this is left to `door audit` (it compares every pair).
AUDIT_ON_OPEN_MAX_ROWS = 20_000


def row_paths(checks: dict, ids) -> list[str]:
    """The crop path each stored row (ids (n,)) took, from its ``checks`` (FaceDB.checks; "aligned" when
    its report names none)."""
    return [checks.get(int(i), (None, None))[1] or "aligned" for i in ids]


def others_gallery(db: face_db.FaceDB, embedder, cohort_folder=None) -> tuple[tuple, list[str]]:
    """Everyone enrolled with ``embedder`` plus the public cohort: ((names, owner (n,), E (n, dim)),
    each row's crop path ("cohort" for the cohort's faces))."""
    from happyhouse.door.cohort import cohort_gallery
    row_names, E, ids = db.rows(embedder.name, embedder.dim)
    c_names, c_owner, c_E = cohort_gallery(embedder, cohort_folder)
    names = sorted(set(row_names)) + list(c_names)
    index = {n: i for i, n in enumerate(names)}
    owner = np.array([index[n] for n in row_names] + [index[n] for n in c_names], np.int64)
    paths = row_paths(db.checks(ids), ids) + ["cohort"] * len(c_names)
    return (names, owner, np.concatenate([E.reshape(-1, embedder.dim), c_E]).astype(np.float32)), paths


def check_photos(db: face_db.FaceDB, embedder, name: str, images, faces, vectors, whats, threshold=None,
                 cohort_folder=None, settings=enrolment.CheckSettings()) -> list:
    """enrolment.PhotoCheck for each photo of ``name`` (images (H, W, 3), faces, embeddings (n, dim)).
    The hub check runs on every crop path, at the loosest threshold any query can meet the photo with
    (hub_threshold)."""
    others, paths = others_gallery(db, embedder, cohort_folder)
    return [enrolment.check_photo(what, enrolment.face_quality(image, face, settings), vector, name,
                                  enrolment.comparable(others, paths, face.crop, settings),
                                  hub_threshold(embedder, face.crop, threshold), settings)
            for image, face, vector, what in zip(images, faces, vectors, whats)]


def refuse_failed(checks, force: bool = False) -> list:
    """The checks that failed; EnrolmentRefused naming them unless ``force``."""
    failed = [c for c in checks if not c.ok]
    if failed and not force:
        raise EnrolmentRefused(enrolment.refusal_message(failed), [c.to_dict() for c in checks])
    return failed


def enroll_checked(db: face_db.FaceDB, name: str, vectors: np.ndarray, model: str, hashes: list[str], checks,
                   crops: list[str], add: bool = False, force: bool = False) -> tuple[dict, str]:
    """``enroll_result`` after the checks: EnrolmentRefused when a photo failed (unless ``force``: stored
    as "forced", with a warning line)."""
    failed = refuse_failed(checks, force)
    verdicts = [("ok" if c.ok else "forced", json.dumps({**c.to_dict(), "crop": crop}))
                for c, crop in zip(checks, crops)]
    count = db.enroll(name, vectors, model, hashes, add=add, checks=verdicts)
    payload = {"enrolled": name, "embeddings": count, "model": model, "db": str(db.path)}
    text = f"enrolled {name}: {count} photo{'s' * (count != 1)} ({model}) in {db.path}"
    if failed:
        payload["warnings"] = [c.to_dict() for c in failed]
        text += "".join(f"\nwarning: stored under --force although {c.what}: "
                        + "; ".join(m for _, m in c.problems) for c in failed)
    return payload, text


def audit(db: face_db.FaceDB, embedder, cohort_folder=None, store: bool = True) -> dict:
    """Re-check every stored photo of ``embedder``: hubs (each stored as "flagged"; "forced" rows keep
    their status) and people closer than the threshold. Rows are never removed. JSON-ready dict."""
    row_names, E, ids = db.rows(embedder.name, embedder.dim)
    names = sorted(set(row_names))
    owner = np.array([names.index(n) for n in row_names], np.int64)
    reports, statuses = db.reports(embedder.name), db.statuses(embedder.name)
    crops = [reports.get(int(i), {}).get("crop") or "aligned" for i in ids]
    from happyhouse.door.cohort import cohort_gallery
    result = enrolment.audit_gallery(names, owner, E, [hub_threshold(embedder, c) for c in crops], ids,
                                     cohort_gallery(embedder, cohort_folder), paths=crops)
    hubs = {h["id"]: h for h in result["hubs"]}
    verdicts = [(int(i), statuses.get(int(i)) if statuses.get(int(i)) == "forced" else
                 ("flagged" if int(i) in hubs else "ok"),
                 json.dumps({**reports.get(int(i), {}), "crop": crop, "audit": hubs.get(int(i))}))
                for i, crop in zip(ids, crops)]
    if store and verdicts:
        db.set_statuses(verdicts)
    result.update(model=embedder.name, photos=len(ids), db=str(db.path),
                  forced=[{"id": i, "name": n} for i, n in zip(ids.tolist(), row_names) if statuses.get(i) == "forced"])
    return result


def audit_on_open(db: face_db.FaceDB, embedder, cohort_folder=None) -> str | None:
    """Audit a database's photos stored before the enrolment checks existed (first open); the note to
    print, or None when every photo already has a verdict. Nothing is removed."""
    unchecked = db.unchecked(embedder.name)
    if not unchecked:
        return None
    if len(unchecked) > AUDIT_ON_OPEN_MAX_ROWS:
        return (f"{db.path}: {len(unchecked):,} photos were stored before the enrolment checks; too many to audit "
                "on open: run `door audit`.")
    result = audit(db, embedder, cohort_folder)
    hubs = [h for h in result["hubs"] if h["id"] in set(unchecked)]
    who = ", ".join(f"a photo of {h['name']} ({h['distance']:.2f} from {h['nearest']})" for h in hubs[:5])
    return (f"{db.path}: {len(unchecked)} photo{'s' * (len(unchecked) != 1)} stored before the enrolment checks "
            f"existed were audited now: {len(hubs)} {'is a hub' if len(hubs) == 1 else 'are hubs'}"
            + (f" ({who}); each opens the door only when a second photo of the same person agrees. "
               if hubs else ". ") + "Nothing was removed; `door audit` shows the details.")


def say_audit_on_open(db: face_db.FaceDB, embedder, cohort_folder=None) -> None:
    """:func:`audit_on_open`, its note (if any) printed on stderr as ``note: ...``."""
    note = audit_on_open(db, embedder, cohort_folder)
    if note:
        print(f"note: {note}", file=sys.stderr, flush=True)
