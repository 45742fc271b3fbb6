"""Faces followed across frames by box overlap, and decided per person, not per frame.

    tracker = Tracker(k=3, n=5)
    decisions = tracker.update([Sighting(box, name, distance, threshold)], t=12.4)

Each frame's sightings are matched to the open tracks by IoU (greedy, best overlap first);
a sighting that overlaps no track starts a new one. A track is decided once: a name when
``k`` of its last ``n`` sightings name the same person (each already under its threshold),
"unknown" when it has ``n`` sightings and no name reaches ``k`` (a face unknown at first, too far
away, is still named when ``k`` of its later sightings agree: its one further decision). A track unseen for
``max_missing`` processed frames is closed (undecided if it had too few sightings).
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

UNKNOWN = "unknown"


@dataclass(frozen=True)
class Sighting:
    """One face in one frame: ``box`` (x, y, w, h), the identify answer for it (``name`` or
    "unknown", its best ``distance`` and the ``threshold`` used); ``crop``: optional (h, w, 3) face
    pixels kept for a snapshot; ``decision``: optional, why (recognition.judge's decision as JSON)."""
    box: tuple[int, int, int, int]
    name: str
    distance: float
    threshold: float
    crop: np.ndarray | None = field(default=None, compare=False, repr=False)
    decision: dict | None = field(default=None, compare=False, repr=False)


@dataclass
class Track:
    """A face followed over frames; ``history`` holds its last ``n`` sightings."""
    id: int
    box: tuple[int, int, int, int]
    first_t: float
    last_t: float
    history: deque
    missing: int = 0
    seen: int = 0
    decided: str | None = None


@dataclass(frozen=True)
class Decision:
    """A track's verdict: ``name`` (or "unknown"), the distance and threshold of its best agreeing
    sighting, the sightings it rests on (``frames``), when the face was first seen and decided; ``why``:
    that sighting's decision (reason, photos compared, person), when it carried one."""
    track: int
    name: str
    distance: float
    threshold: float
    frames: int
    box: tuple[int, int, int, int]
    first_t: float
    t: float
    crop: np.ndarray | None = field(default=None, compare=False, repr=False)
    why: dict | None = field(default=None, compare=False, repr=False)


def iou(a, b) -> float:
    """Intersection over union of two (x, y, w, h) boxes, in [0, 1]."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return float(inter / union) if union > 0 else 0.0


class Tracker:
    """Tracks and their K-of-N decisions (see the module docstring)."""

    def __init__(self, k: int = 3, n: int = 5, min_iou: float = 0.3, max_missing: int = 3):
        if not 1 <= k <= n:
            raise ValueError(f"need 1 <= K <= N, not K={k}, N={n}")
        self.k, self.n, self.min_iou, self.max_missing = k, n, min_iou, max_missing
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, sightings: list[Sighting], t: float) -> list[Decision]:
        """Add one processed frame's sightings (taken at time ``t`` s) -> the decisions it completes."""
        matched = self._match(sightings)
        for track in self.tracks:
            track.missing = 0 if track.id in matched.values() else track.missing + 1
        self.tracks = [tr for tr in self.tracks if tr.missing <= self.max_missing]
        by_id = {tr.id: tr for tr in self.tracks}
        decisions = []
        for i, s in enumerate(sightings):
            track = by_id.get(matched.get(i)) or self._start(s, t)
            track.box, track.last_t, track.seen = s.box, t, track.seen + 1
            track.history.append(s)
            decision = self._decide(track, t) if track.decided in (None, UNKNOWN) else None
            if decision and (track.decided is None or decision.name != UNKNOWN):  # unknown said once, a name after it
                track.decided = decision.name
                decisions.append(decision)
        return decisions

    def _start(self, s: Sighting, t: float) -> Track:
        track = Track(self._next_id, s.box, t, t, deque(maxlen=self.n))
        self._next_id += 1
        self.tracks.append(track)
        return track

    def _match(self, sightings: list[Sighting]) -> dict[int, int]:
        """sighting index -> track id, greedily by best overlap above ``min_iou``."""
        pairs = sorted(((iou(s.box, tr.box), i, tr.id) for i, s in enumerate(sightings) for tr in self.tracks),
                       reverse=True)
        matched, used = {}, set()
        for overlap, i, tid in pairs:
            if overlap < self.min_iou:
                break
            if i not in matched and tid not in used:
                matched[i] = tid
                used.add(tid)
        return matched

    def _decide(self, track: Track, t: float) -> Decision | None:
        names = Counter(s.name for s in track.history if s.name != UNKNOWN)
        name, votes = names.most_common(1)[0] if names else (UNKNOWN, 0)
        if votes >= self.k:
            best = min((s for s in track.history if s.name == name), key=lambda s: s.distance)
            return Decision(track.id, name, best.distance, best.threshold, votes, track.box, track.first_t, t,
                            best.crop, best.decision)
        if len(track.history) == self.n:
            best = min(track.history, key=lambda s: s.distance)
            sharpest = max(track.history, key=lambda s: s.box[2] * s.box[3])
            return Decision(track.id, UNKNOWN, best.distance, best.threshold, len(track.history), track.box,
                            track.first_t, t, sharpest.crop, best.decision)
        return None


class Cooldown:
    """A person admitted at time t is not admitted again before t + ``seconds``."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._admitted: dict[str, float] = {}

    def admit(self, name: str, t: float) -> bool:
        """True (and remembered) when ``name`` may be admitted at ``t``; "unknown" is never held back."""
        if name == UNKNOWN:
            return True
        last = self._admitted.get(name)
        if last is not None and t - last < self.seconds:
            return False
        self._admitted[name] = t
        return True
