"""The door's decision for one face against one person's stored photos, shared by verify, identify
(CLI, service) and anything else that opens the door.

    limit, source = query_threshold(embedder, face)          # or TooSmallToDecide
    limits = row_limits(embedder, limit, paths)              # each stored photo's, by its crop path
    decision = decide(distances, doubtful, limits)           # (n,) distances to the person's photos
    decision = over_next(decision, rival, query_margin(embedder, face))   # rival: the next person's

The rule (measured in bench/door_accuracy.py, docs/door.md): the nearest photo that passed the
enrolment checks decides, as before; a photo that failed them (stored with --force, or flagged by
an audit: a "hub") or never had them (no verdict) counts only when a second photo of the same person
is under the threshold too. Each photo is compared at the stricter of the face's threshold and the
threshold of the crop path the photo was stored on: a camera frame (aligned, 0.97) meets a photo
stored whole (a thumbnail, the course's crops) at the whole path's 0.7.
Where the table gives a margin (the course's 96x96 crops used whole), the person is named only when
the nearest photo of anyone else lies at least that much farther. Faces under SMALL_FACE_PX get the threshold calibrated for small faces; under MIN_DECIDE_PX the
door does not decide.

Every threshold comes from the one table, :mod:`happyhouse.face.thresholds` (per model and crop
path, and for small faces).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from happyhouse.face.thresholds import MIN_DECIDE_PX, SMALL_FACE_PX, SMALL_FACE_THRESHOLDS, margin_for, threshold_for

#: Photos under the threshold needed to decide when the nearest is doubtful (failed a check).
AGREEING = 2


class TooSmallToDecide(ValueError):
    """The face is too small for the door to decide who it is."""


@dataclass(frozen=True)
class Decision:
    """``accepted``; ``distance``: the nearest photo's; ``reason``: why, in words; ``compared``:
    the nearest photos (distance, status) the decision looked at; ``limit``: the threshold the reason
    speaks of (a photo stored whole is met at its own path's, row_limits; None: no threshold decided)."""
    accepted: bool
    distance: float
    reason: str
    compared: list
    limit: float | None = None

    def to_dict(self) -> dict:
        return {"accepted": self.accepted, "reason": self.reason, "compared": self.compared, "limit": self.limit}


def face_size(face) -> int:
    """The shorter side of a face's box in pixels."""
    return int(min(face.box[2], face.box[3]))


def query_threshold(embedder, face, default: tuple[float, str], override: float | None = None
                    ) -> tuple[float, str]:
    """(threshold, where it came from) for ``face``: ``override`` (--threshold), the small-face
    threshold for aligned faces under SMALL_FACE_PX, else ``default`` (the crop path's).
    Raises TooSmallToDecide for aligned faces under MIN_DECIDE_PX."""
    size = face_size(face)
    if face.crop == "aligned" and size < MIN_DECIDE_PX:
        raise TooSmallToDecide(f"the face is {size} px, too small to decide (at least {MIN_DECIDE_PX} px): "
                               "come closer to the camera")
    if override is not None:
        return float(override), "--threshold"
    if face.crop == "aligned" and size < SMALL_FACE_PX and embedder.name in SMALL_FACE_THRESHOLDS:
        return SMALL_FACE_THRESHOLDS[embedder.name].value, f"calibrated for faces under {SMALL_FACE_PX} px"
    return default


def query_margin(embedder, face) -> float:
    """The margin over the next person ``face``'s crop path needs with ``embedder`` (0: none)."""
    return margin_for(embedder.name, face.crop)


def over_next(decision: Decision, rival: float | None, margin: float) -> Decision:
    """``decision``, refused when it accepted but ``rival`` (the nearest photo of anyone else; None:
    nobody else) lies less than ``margin`` farther than the person's nearest photo."""
    if not decision.accepted or rival is None or margin <= 0 or rival - decision.distance >= margin:
        return decision
    return Decision(False, decision.distance, f"another person lies only {rival - decision.distance:.3f} farther "
                                              f"({rival:.3f} against {decision.distance:.3f}; at least {margin:g} "
                                              "needed): too close to tell apart", decision.compared, decision.limit)


def row_limits(embedder, limit: float, paths: list[str], override: float | None = None) -> np.ndarray:
    """(n,) the threshold a query decided at ``limit`` meets each stored photo with: the stricter of
    ``limit`` and the threshold of the photo's crop path ``paths`` (n,), so a photo stored whole (a
    thumbnail, the course's crops) never admits a camera frame (aligned) beyond the whole path's
    threshold; ``override`` (--threshold) for every photo."""
    if override is not None:
        return np.full(len(paths), float(override))
    return np.minimum(limit, [threshold_for(embedder, path) for path in paths])


def decide(distances: np.ndarray, doubtful: np.ndarray, limit, shown: int = 3) -> Decision:
    """Accept or refuse one person from ``distances`` (n,) to their photos; ``doubtful`` (n,) bool marks
    photos that failed the enrolment checks; ``limit``: the threshold, or (n,) one per photo (row_limits;
    the reasons name the one of the photo they speak of, the loosest for agreeing photos)."""
    d = np.asarray(distances, np.float64)
    doubtful = np.asarray(doubtful, bool)
    limits = np.broadcast_to(np.asarray(limit, np.float64), d.shape)
    order = np.argsort(d, kind="stable")
    compared = [{"distance": round(float(d[i]), 4), "checked": not bool(doubtful[i])} for i in order[:shown]]
    nearest = float(d[order[0]])
    under = d < limits
    checked_under = under & ~doubtful
    if checked_under.any():
        k = int(order[checked_under[order]][0])   # the nearest checked photo under its limit
        return Decision(True, nearest, f"a checked photo lies {d[k]:.3f} < {limits[k]:g}", compared, float(limits[k]))
    if under.sum() >= AGREEING:
        return Decision(True, nearest, f"{int(under.sum())} photos agree under {limits[under].max():g} "
                                       "(the nearest failed an enrolment check)", compared, float(limits[under].max()))
    if under.any():
        return Decision(False, nearest, f"only a photo that failed the enrolment checks lies under "
                                        f"{limits[under].max():g} ({nearest:.3f}); a second photo of the same "
                                        "person must agree", compared, float(limits[under].max()))
    k = int(order[0])
    return Decision(False, nearest, f"the nearest photo lies {nearest:.3f} >= {limits[k]:g}", compared, float(limits[k]))
