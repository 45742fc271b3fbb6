"""Checks on an enrolment photo before it is stored, and on a whole database (audit).

A photo is refused when its face is too small, blurred, or a doubtful detection, or when its
embedding lies within the loosest threshold any query can meet it with (thresholds.hub_threshold:
its own crop path's, whatever path it took) of someone *else*: another enrolled person's photo or a
face of the public cohort (happyhouse/door/cohort.py). Such a "hub" photo would by itself open the
door for other people (issue 22: a black-and-white retouched portrait 0.77 from a stranger).

    quality = face_quality(rgb, face)                    # size, sharpness, confidence, grey
    check = check_photo(quality, vector, comparable(others, paths, crop), limit)  # -> PhotoCheck
    report = audit_gallery(names, owner, E, limit)       # hubs and people too close (stored rows)

Measured on $FACES_DATA/people (20 photos) and their degraded copies (bench/door_accuracy.py,
docs/door.md): no original photo lies within 0.97 of another person's photo or of a cohort
face; 20-25% of black-and-white copies and 10-16% of blurred, shrunk or retouched copies do.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: What a household should do about a refused photo.
ADVICE = ("Use a clearer, frontal, colour photo where the face is at least {px} px wide "
          "(or store it anyway with --force).")


@dataclass(frozen=True)
class CheckSettings:
    """Limits of the enrolment checks (measured in bench/door_accuracy.py).

    ``min_face_px``: the face box's shorter side in the photo; ``min_sharpness``: variance of the
    Laplacian of the face resized to ``sharpness_side`` px (original photos: 523-1,788; blurred
    copies 79-256); ``min_confidence``: MTCNN's (originals >= 0.947); ``hub_margin``: a photo is a
    hub when another person's face lies closer than the accept threshold plus this margin;
    ``cohort_margin``: how much closer a cohort face must lie (its faces are small grey crops, nearer to
    everything: joe_biden/1.jpg lies 0.964 from one and is refused at 0; measured, a margin of 0.07
    let 2 of 309 strangers in with every photo enrolled, 0 lets none);
    ``margin_path``: two photos of different people both on this crop path are not compared with each
    other (the course's whole 96x96 crops lie 0.48-0.52 apart and no threshold separates them: the
    whole-crop margin over the next person decides between them); each is still compared with the
    cohort and with photos on the other path."""
    min_face_px: int = 60
    min_sharpness: float = 200.0
    sharpness_side: int = 64
    min_confidence: float = 0.93
    hub_margin: float = 0.0
    cohort_margin: float = 0.0
    margin_path: str = "whole"


@dataclass(frozen=True)
class Quality:
    """What the photo's face looks like: box side in pixels, sharpness, detection confidence, grey."""
    size_px: int
    sharpness: float
    confidence: float
    grey: bool

    def to_dict(self) -> dict:
        return {"size_px": self.size_px, "sharpness": round(self.sharpness, 1),
                "confidence": round(self.confidence, 4), "grey": self.grey}


@dataclass
class PhotoCheck:
    """The verdict on one photo: ``problems`` (code, message) pairs; ``nearest`` other person."""
    what: str
    quality: Quality | None
    problems: list[tuple[str, str]] = field(default_factory=list)
    nearest: tuple[str, float] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"photo": self.what, "ok": self.ok,
                "quality": self.quality.to_dict() if self.quality else None,
                "problems": [{"check": code, "message": text} for code, text in self.problems],
                "nearest_other": None if self.nearest is None else
                {"name": self.nearest[0], "distance": round(self.nearest[1], 4)}}


def sharpness(image: np.ndarray, box, side: int = 64) -> float:
    """Variance of the Laplacian of the face box of ``image`` (H, W, 3) resized to ``side`` px: the same
    scale for every face, so a large face is not sharper only for being large."""
    import cv2
    x, y, w, h = (int(v) for v in box)
    roi = image[max(y, 0):max(y, 0) + max(h, 1), max(x, 0):max(x, 0) + max(w, 1)]
    if roi.size == 0:
        return 0.0
    grey = cv2.cvtColor(np.ascontiguousarray(roi), cv2.COLOR_RGB2GRAY)
    grey = cv2.resize(grey, (side, side), interpolation=cv2.INTER_AREA if min(grey.shape) > side else cv2.INTER_LINEAR)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def is_grey(image: np.ndarray, tolerance: float = 4.0) -> bool:
    """True when the photo (H, W, 3) is black and white (channels within ``tolerance`` on average)."""
    img = image.astype(np.int16)
    return float(np.abs(img[..., 0] - img[..., 1]).mean() + np.abs(img[..., 1] - img[..., 2]).mean()) < tolerance


def face_quality(image: np.ndarray, face, settings: CheckSettings = CheckSettings()) -> Quality:
    """The :class:`Quality` of ``face`` (detect.Face) in ``image`` (H, W, 3) uint8 RGB."""
    return Quality(size_px=int(min(face.box[2], face.box[3])),
                   sharpness=sharpness(image, face.box, settings.sharpness_side),
                   confidence=float(face.confidence), grey=is_grey(image))


def quality_problems(quality: Quality, settings: CheckSettings = CheckSettings()) -> list[tuple[str, str]]:
    """(code, message) for each way the face itself is not good enough to enrol."""
    problems = []
    if quality.size_px < settings.min_face_px:
        problems.append(("face_size", f"the face is {quality.size_px} px, smaller than {settings.min_face_px} px"))
    if quality.sharpness < settings.min_sharpness:
        problems.append(("sharpness", f"the face is blurred (sharpness {quality.sharpness:.0f}, "
                                      f"at least {settings.min_sharpness:g} needed)"))
    if quality.confidence < settings.min_confidence:
        problems.append(("confidence", f"the face detector is unsure it is a face (confidence "
                                       f"{quality.confidence:.3f} < {settings.min_confidence:g}): turned away, "
                                       "covered or badly lit"))
    return problems


def nearest_other(vector: np.ndarray, names: list[str], owner: np.ndarray, E: np.ndarray,
                  exclude: str | None) -> tuple[str, float] | None:
    """(name, distance) of the nearest row of ``E`` (n, dim) not owned by ``exclude``; None if none."""
    if len(E) == 0:
        return None
    d = np.linalg.norm(np.asarray(E, np.float32) - vector, axis=1)
    if exclude is not None and exclude in names:
        d = np.where(owner == names.index(exclude), np.inf, d)
    k = int(np.argmin(d))
    return (names[owner[k]], float(d[k])) if np.isfinite(d[k]) else None


def comparable(others, paths, crop: str, settings: CheckSettings = CheckSettings()):
    """``others`` (names, owner (n,), E (n, dim)) less the rows a photo on crop path ``crop`` is not
    compared with: with ``paths`` (n,) the other rows' crop paths ("cohort" for cohort faces), both on
    ``settings.margin_path``."""
    names, owner, E = others
    keep = ~((np.asarray(paths) == settings.margin_path) & (crop == settings.margin_path))
    return names, np.asarray(owner)[keep], np.asarray(E)[keep]


def check_photo(what: str, quality: Quality | None, vector: np.ndarray, name: str, others, limit: float,
                settings: CheckSettings = CheckSettings()) -> PhotoCheck:
    """Every check on one photo of ``name`` (embedding (dim,)). ``others``: (names, owner (n,), E (n, dim)),
    every enrolled row plus the cohort (named ``cohort:...``); ``limit``: the accept threshold of the
    face's crop path. A hub lies within ``limit + hub_margin`` of another person's face, or within
    ``limit + hub_margin - cohort_margin`` of a cohort face."""
    check = PhotoCheck(what, quality, quality_problems(quality, settings) if quality else [])
    names, owner, E = others
    if len(E) == 0:
        return check
    d = np.linalg.norm(np.asarray(E, np.float32) - np.asarray(vector, np.float32), axis=1)
    d = np.where(np.asarray(owner) == (names.index(name) if name in names else -1), np.inf, d)
    cohort = np.array([names[o].startswith("cohort:") for o in owner], bool)
    k = int(np.argmin(d))
    check.nearest = (names[owner[k]], float(d[k])) if np.isfinite(d[k]) else None
    over = d - (limit + settings.hub_margin - np.where(cohort, settings.cohort_margin, 0.0))
    h = int(np.argmin(over))
    if over[h] < 0:
        who = "a stranger of the public cohort" if cohort[h] else names[owner[h]]
        check.problems.append(("hub", f"it lies {d[h]:.3f} from {who}, under the accept threshold "
                                      f"{limit - (settings.cohort_margin if cohort[h] else 0):g}: "
                                      "it would open the door for them"))
    return check


def refusal_message(checks: list[PhotoCheck], settings: CheckSettings = CheckSettings()) -> str:
    """One message for photos that failed: each photo's problems, then what to do."""
    lines = [f"{c.what}: " + "; ".join(text for _, text in c.problems) for c in checks if not c.ok]
    return ("; ".join(lines) + ". Nothing was stored. " + ADVICE.format(px=settings.min_face_px))


def audit_gallery(names: list[str], owner: np.ndarray, E: np.ndarray, limit, row_ids=None, cohort=None,
                  chunk: int = 2048, cohort_margin: float = CheckSettings.cohort_margin, paths=None) -> dict:
    """Hubs among stored rows E (n, dim) and pairs of people closer than ``limit`` (a float, or (n,) one
    per row; a row with limit 0 is never a hub). ``cohort``: (names, owner, E) of public faces, or None,
    consulted for every row no other person lies under the limit from. ``paths`` (n,): the rows' crop
    paths; two rows both on ``CheckSettings.margin_path`` are not compared.
    Returns {"hubs": [{id, name, nearest, distance}], "close_people": [{a, b, distance}]} (JSON-ready)."""
    E, owner = np.asarray(E, np.float32), np.asarray(owner)
    on_margin_path = np.asarray(paths if paths is not None else [None] * len(E)) == CheckSettings.margin_path
    limits = np.broadcast_to(np.asarray(limit, np.float64), (len(E),))
    row_ids = np.arange(len(E)) if row_ids is None else np.asarray(row_ids)
    sq = (E.astype(np.float64) ** 2).sum(1)
    hubs, pairs = [], {}
    for at in range(0, len(E), chunk):
        d = np.sqrt(np.maximum(sq[at:at + chunk, None] + sq[None, :] - 2.0 * (E[at:at + chunk] @ E.T), 0.0))
        d[owner[at:at + chunk, None] == owner[None, :]] = np.inf
        if on_margin_path.any():
            d[on_margin_path[at:at + chunk, None] & on_margin_path[None, :]] = np.inf
        for r, i in enumerate(range(at, min(at + chunk, len(E)))):
            j = int(np.argmin(d[r]))
            near = (names[owner[j]], float(d[r, j])) if np.isfinite(d[r, j]) else None
            if (near is None or near[1] >= limits[i]) and cohort is not None and len(cohort[2]):
                c = nearest_other(E[i], *cohort, exclude=None)          # cohort faces: closer than limit - margin
                near = c if c and c[1] < limits[i] - cohort_margin else near
            if near is not None and near[1] < (limits[i] if not near[0].startswith("cohort:")
                                               else limits[i] - cohort_margin):
                hubs.append({"id": int(row_ids[i]), "name": names[owner[i]], "nearest": near[0],
                             "distance": round(near[1], 4)})
            if np.isfinite(d[r, j]) and d[r, j] < limits[i]:
                key = tuple(sorted((names[owner[i]], names[owner[j]])))
                pairs[key] = min(pairs.get(key, np.inf), float(d[r, j]))
    return {"hubs": hubs, "close_people": [{"a": a, "b": b, "distance": round(v, 4)}
                                           for (a, b), v in sorted(pairs.items(), key=lambda kv: kv[1])]}
