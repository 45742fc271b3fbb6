"""The door's default L2-distance thresholds: one table, keyed by (model, crop path), with the evidence.

A face reaches the embedder by one of two crop paths (``happyhouse.door.detect.CROP_KINDS``):
"whole", the photo used as the face (the course's small square crops), or "aligned", a face cut
from an ordinary photo around its detected landmarks. Each model has a threshold per path.
Recalibrate on your own photos with ``door calibrate FOLDER`` (``happyhouse.door.calibration``).
"""
from __future__ import annotations

from dataclasses import dataclass

#: The two crop paths a face can take to the embedder.
CROPS = ("whole", "aligned")
#: Unit-length embeddings are never farther apart than 2: a threshold of 2 or more accepts anyone.
MAX_THRESHOLD = 2.0


@dataclass(frozen=True)
class Threshold:
    """One default threshold: its ``value`` (L2 distance) and the ``evidence`` it was chosen on."""

    value: float
    evidence: str


#: (model name, crop path) -> its default threshold; evidence also in docs/door.md.
THRESHOLDS = {
    ("nn4.small2", "whole"): Threshold(
        0.7, "the course's threshold, chosen on its 96x96 crops"),
    ("nn4.small2", "aligned"): Threshold(
        0.7, "NOT calibrated here: 5 of the course's weight CSVs are missing, so the model cannot run; it "
             "keeps the course's 0.7, chosen on the course's 96x96 crops, which are OpenFace-aligned faces "
             "like the ones this path makes"),
    ("inception-resnet-v1", "whole"): Threshold(
        0.7, "calibrated on the course's 96x96 images (12 residents and 6 camera shots, 7 genuine and 146 "
             "impostor pairs, `python -m fr_utils calibrate`): equal error rate 0.14 at 0.66; every genuine "
             "pair lies at 0.27-0.66 (camera_0/younes 0.62), kian/camera_2 at 1.09; false-accept rate 0.19 "
             "at 0.9"),
    ("inception-resnet-v1", "aligned"): Threshold(
        0.97, "calibrated on $FACES_DATA/people (20 photos of 10 people, 18 genuine and 172 impostor pairs) "
              "by calibration.choose_threshold at FAR <= 0.01, checked leaving each person out and on the "
              "group photos: genuine pairs 0.18-0.93, impostor pairs from 1.01"),
}


#: Aligned faces whose box's shorter side is under this many pixels use SMALL_FACE_THRESHOLDS.
SMALL_FACE_PX = 60
#: Faces under this are refused as too small to decide (MTCNN finds faces down to about 20 px).
MIN_DECIDE_PX = 40
#: model -> threshold for aligned faces of MIN_DECIDE_PX..SMALL_FACE_PX px (the door's decision rule).
SMALL_FACE_THRESHOLDS = {
    "inception-resnet-v1": Threshold(
        0.95, "`door calibrate` by face size on $FACES_DATA/people and degraded copies (bench/door_accuracy.py; "
              "pairs with a face under 60 px): the recommended threshold is 0.950 at pair FAR <= 0.001 (1.078 at "
              "0.01). 1.0 (before 2026-12-05), looser than the hub check's 0.97, let a stranger in: kate_siegel/1.jpg "
              "shrunk to faces of 41-58 px (colour and grey) lay 0.962-0.997 from angelina_jolie/1.jpg. The bench "
              "(faces/, 1/3/all photos) named 0.788/0.927/0.962 at 0.95, 0.794/0.927/0.962 at 0.97, "
              "0.804/0.927/0.962 at 1.0, no stranger at any; the hub check at 1.0 instead named 0.785/0.881/0.913"),
}

#: (model, crop path) -> the least distance by which the nearest photo of anyone else must lie farther
#: than the person named (the door's decision rule; 0 where absent): a margin over the next person.
MARGINS = {
    ("inception-resnet-v1", "whole"): Threshold(
        0.1, "bench/door_accuracy.py on the course's 96x96 crops (12 residents, 6 camera shots, each resident "
             "left out in turn): the left-out resident's shot lies 0.44-0.60 from another resident, under the "
             "0.7 threshold, but only 0.01-0.09 nearer than the next one; the residents' own shots lie 0.14-0.34 "
             "nearer than the next person. 0.1 admitted 0 of 6 (4 of 6 without) and named 24 of 24 with every "
             "photo, 120/120 with 3; 0.05 admitted 5 of 30 with one photo each. Chosen on these 6 shots: "
             "recalibrate on your own crops"),
}


def check_crop(crop: str) -> str:
    """``crop`` if it is one of :data:`CROPS`, else ValueError."""
    if crop not in CROPS:
        raise ValueError(f"crop must be one of {CROPS}, not {crop!r}.")
    return crop


def default_threshold(model: str, crop: str) -> float:
    """The table's threshold for ``model`` on crop path ``crop``; KeyError naming the known models."""
    check_crop(crop)
    if (model, crop) not in THRESHOLDS:
        known = sorted({name for name, _ in THRESHOLDS})
        raise KeyError(f"no default threshold for model {model!r}; known: {', '.join(known)}.")
    return THRESHOLDS[model, crop].value


def describe(model: str) -> str:
    """The thresholds of ``model`` with their evidence, one sentence per crop path."""
    return " ".join(f"Threshold {THRESHOLDS[model, crop].value} (L2 distance) on {crop} crops: "
                    f"{THRESHOLDS[model, crop].evidence}." for crop in CROPS)


def check_threshold(threshold, what: str = "the threshold") -> float:
    """``threshold`` as a float, or ValueError when it is not in (0, 2): at 2 or more the door opens for anyone."""
    value = float(threshold)
    if not value > 0:
        raise ValueError(f"{what} must be a positive distance, not {threshold}.")
    if value >= MAX_THRESHOLD:
        low = min(t.value for t in THRESHOLDS.values())
        high = max(t.value for t in THRESHOLDS.values())
        raise ValueError(f"a threshold of {threshold} would open the door for anyone: unit-length embeddings are "
                         f"never more than {MAX_THRESHOLD:g} apart. Use a distance below {MAX_THRESHOLD:g} "
                         f"(the defaults are {low}-{high}).")
    return value


def margin_for(model: str, crop: str) -> float:
    """The margin over the next person for ``model`` on crop path ``crop`` (:data:`MARGINS`; 0 if none)."""
    check_crop(crop)
    entry = MARGINS.get((model, crop))
    return entry.value if entry is not None else 0.0


def hub_threshold(embedder, crop: str, threshold: float | None = None) -> float:
    """The loosest threshold any query can be decided at against a photo stored on crop path ``crop``:
    a query is compared with each stored photo at the stricter of its own threshold and the stored
    photo's path's (happyhouse.door.decision.row_limits), so the stored photo's; ``threshold``
    (--threshold, which every comparison then uses) if looser."""
    return max(threshold_for(embedder, crop), threshold or 0.0)


def threshold_for(embedder, crop: str) -> float:
    """``embedder``'s default threshold for crop path ``crop``: its per-path ``thresholds`` (an Embedder's,
    read from :data:`THRESHOLDS`), else its one ``threshold``, else the table's for its ``name``."""
    check_crop(crop)
    own = getattr(embedder, "thresholds", None)
    if own:
        return float(own[crop])
    one = getattr(embedder, "threshold", None)
    return float(one) if one is not None else default_threshold(embedder.name, crop)
