"""Choosing the door's threshold from data: all genuine and impostor pairs, ROC, EER.

A pair of photos is *accepted* when the L2 distance of their embeddings is below the
threshold (as ``verify`` does). For every threshold, the false-accept rate (FAR) is the
share of impostor pairs (different people) accepted and the true-accept rate (TAR) the
share of genuine pairs (same person) accepted; the equal error rate (EER) is where FAR
equals 1 - TAR.

    d, genuine = pair_distances(vectors, labels)            # (n, dim), n labels -> (p,), (p,)
    t = choose_threshold(d, genuine, far=0.01)              # the threshold to recommend
    check = leave_one_person_out(vectors, labels)          # that choice, checked on unseen people
    result = calibrate(vectors, labels, far=0.01)           # JSON-ready dict (all of the above)
    plot_roc(result, "output/calibrate/roc.png")
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

#: Embeddings are unit vectors, so distances lie in [0, 2].
HIST_BINS = np.linspace(0.0, 2.0, 41)
MAX_CURVE_POINTS = 400


class CalibrationError(ValueError):
    """The folder or the embeddings cannot give a calibration; the message says why."""


def photos_by_person(folder: str | os.PathLike, suffixes=None) -> list[tuple[str, Path]]:
    """(person, photo) for every photo in ``folder/<person>/``, sorted; checks there are pairs of both kinds."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CalibrationError(f"{folder}: not a folder. calibrate needs a folder of <person>/<photo> files.")
    photos = [(d.name, p) for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".")
              for p in sorted(d.iterdir())
              if p.is_file() and not p.name.startswith(".") and (suffixes is None or p.suffix.lower() in suffixes)]
    _check_labels([person for person, _ in photos], where=str(folder))
    return photos


def _check_labels(labels, where: str) -> None:
    people = set(labels)
    if len(people) < 2 or len(labels) == len(people):
        raise CalibrationError(
            f"{where}: {len(labels)} photos of {len(people)} people. Calibration needs at least two people "
            "(impostor pairs) and at least one person with two or more photos (genuine pairs), laid out as "
            "<folder>/<person>/<photo>.")


def pair_distances(vectors: np.ndarray, labels) -> tuple[np.ndarray, np.ndarray]:
    """All unordered pairs of rows of ``vectors`` (n, dim): distances (p,) and genuine (p,) bool."""
    vectors = np.asarray(vectors, dtype=np.float64)
    labels = np.asarray(labels)
    i, j = np.triu_indices(len(vectors), k=1)
    sq = (vectors ** 2).sum(1)
    d = np.sqrt(np.maximum(sq[i] + sq[j] - 2.0 * np.einsum("pd,pd->p", vectors[i], vectors[j]), 0.0))
    return d, labels[i] == labels[j]


def roc(distances: np.ndarray, genuine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, far, tar), each (t,), thresholds ascending: every distinct distance and one above all."""
    distances = np.asarray(distances, dtype=np.float64)
    genuine = np.asarray(genuine, dtype=bool)
    gen, imp = np.sort(distances[genuine]), np.sort(distances[~genuine])
    if len(gen) == 0 or len(imp) == 0:
        raise CalibrationError("need both genuine and impostor pairs to draw a ROC curve.")
    thresholds = np.append(np.unique(distances), distances.max() + 1e-6)
    far = np.searchsorted(imp, thresholds, side="left") / len(imp)   # impostors with d < t
    tar = np.searchsorted(gen, thresholds, side="left") / len(gen)
    return thresholds, far, tar


def equal_error_rate(thresholds, far, tar) -> tuple[float, float]:
    """(EER, threshold) where FAR is closest to the false-reject rate 1 - TAR."""
    frr = 1.0 - tar
    k = int(np.argmin(np.abs(far - frr)))
    return float((far[k] + frr[k]) / 2), float(thresholds[k])


def threshold_at_far(thresholds, far, target: float) -> float:
    """The largest threshold whose false-accept rate is at most ``target``."""
    ok = np.flatnonzero(far <= target)
    return float(thresholds[ok[-1]])


def choose_threshold(distances, genuine, far: float = 0.01) -> float:
    """The threshold to recommend from pair distances (p,) and genuine flags (p,).

    It accepts as many genuine pairs as any threshold with false-accept rate <= ``far``, and
    sits halfway between the farthest of those genuine pairs and the nearest impostor pair
    beyond it (the widest margin on both sides, rather than the edge of the allowed FAR).
    """
    distances, genuine = np.asarray(distances, dtype=np.float64), np.asarray(genuine, dtype=bool)
    thresholds, far_curve, _ = roc(distances, genuine)
    limit = threshold_at_far(thresholds, far_curve, far)
    accepted = distances[genuine][distances[genuine] < limit]
    if not len(accepted):
        return limit
    beyond = distances[~genuine][distances[~genuine] > accepted.max()]
    return float((accepted.max() + beyond.min()) / 2) if len(beyond) else limit


def leave_one_person_out(vectors: np.ndarray, labels, far: float = 0.01) -> dict:
    """Check :func:`choose_threshold` on people it was not chosen on.

    For each person: choose the threshold on the pairs without them, then count how many of
    their own pairs (genuine, and impostor with everyone else) it gets right. Returns the
    held-out true- and false-accept rates over all of those, the range of thresholds chosen,
    and the genuine pairs refused / impostor pairs accepted (person, distance, threshold).
    """
    labels = np.asarray([str(x) for x in labels])
    d, genuine = pair_distances(vectors, labels)
    i, j = np.triu_indices(len(labels), k=1)
    counts = {"genuine": 0, "genuine_accepted": 0, "impostor": 0, "impostor_accepted": 0}
    chosen, refused, accepted = [], [], []
    for person in sorted(set(labels)):
        held = (labels[i] == person) | (labels[j] == person)
        if genuine[~held].sum() == 0 or (~genuine[~held]).sum() == 0:
            continue  # without this person there is nothing to choose on
        t = choose_threshold(d[~held], genuine[~held], far)
        chosen.append(t)
        gen, imp = d[held & genuine], d[held & ~genuine]
        counts["genuine"] += len(gen)
        counts["genuine_accepted"] += int((gen < t).sum())
        counts["impostor"] += len(imp)
        counts["impostor_accepted"] += int((imp < t).sum())
        refused += [{"person": person, "distance": round(float(x), 4), "threshold": round(t, 4)} for x in gen[gen >= t]]
        accepted += [{"person": person, "distance": round(float(x), 4), "threshold": round(t, 4)} for x in imp[imp < t]]
    if not chosen or not counts["genuine"]:
        raise CalibrationError("leaving one person out needs at least two people with two or more photos.")
    return {"tar": counts["genuine_accepted"] / counts["genuine"],
            "far": counts["impostor_accepted"] / max(counts["impostor"], 1),
            **counts, "threshold_min": min(chosen), "threshold_max": max(chosen),
            "genuine_refused": refused, "impostor_accepted_pairs": accepted}


def calibrate(vectors: np.ndarray, labels, far: float = 0.01, model: str | None = None,
              default_threshold: float | None = None) -> dict:
    """ROC, EER and the threshold at false-accept rate ``far`` for embeddings (n, dim) with n labels.

    Also the recommended threshold (:func:`choose_threshold`) with its rates, and, where at
    least two people have several photos, its leave-one-person-out check (``held_out``).
    With ``default_threshold`` (the model's), its false- and true-accept rates are reported too.
    """
    labels = [str(x) for x in labels]
    if len(vectors) != len(labels):
        raise CalibrationError(f"{len(vectors)} embeddings but {len(labels)} labels.")
    _check_labels(labels, where="the usable photos")
    d, genuine = pair_distances(vectors, labels)
    thresholds, far_curve, tar_curve = roc(d, genuine)
    eer, eer_threshold = equal_error_rate(thresholds, far_curve, tar_curve)
    chosen = threshold_at_far(thresholds, far_curve, far)
    k = int(np.searchsorted(thresholds, chosen))
    recommended = choose_threshold(d, genuine, far)
    try:
        held_out = leave_one_person_out(vectors, labels, far)
    except CalibrationError:
        held_out = None
    at_default = None
    if default_threshold is not None:
        at_default = {"threshold": float(default_threshold),
                      "far": float(np.mean(d[~genuine] < default_threshold)),
                      "tar": float(np.mean(d[genuine] < default_threshold))}
    keep = np.unique(np.linspace(0, len(thresholds) - 1, min(len(thresholds), MAX_CURVE_POINTS)).astype(int))
    return {
        "model": model, "people": len(set(labels)), "photos": len(labels),
        "genuine_pairs": int(genuine.sum()), "impostor_pairs": int((~genuine).sum()),
        "eer": eer, "eer_threshold": eer_threshold,
        "far_target": far, "threshold": chosen,
        "far_at_threshold": float(far_curve[k]), "tar_at_threshold": float(tar_curve[k]),
        "recommended": {"threshold": recommended, "far": float(np.mean(d[~genuine] < recommended)),
                        "tar": float(np.mean(d[genuine] < recommended))},
        "held_out": held_out,
        "default": at_default,
        "genuine_distance": _summary(d[genuine]), "impostor_distance": _summary(d[~genuine]),
        "roc": {"threshold": thresholds[keep].round(5).tolist(), "far": far_curve[keep].round(5).tolist(),
                "tar": tar_curve[keep].round(5).tolist()},
        "histogram": {"bins": HIST_BINS.round(3).tolist(),
                      "genuine": np.histogram(d[genuine], HIST_BINS)[0].tolist(),
                      "impostor": np.histogram(d[~genuine], HIST_BINS)[0].tolist()},
    }


def by_face_size(vectors: np.ndarray, labels, sizes, far: float = 0.01, small_px: int = 60,
                 default_threshold: float | None = None) -> dict:
    """Calibration of pairs where one face is small (``sizes`` (n,) px < ``small_px``) against pairs of
    large faces: {"small": {...}, "large": {...}}, each with pair counts, the recommended threshold
    and, with ``default_threshold``, the rates there. A band without both kinds of pair is None."""
    d, genuine = pair_distances(vectors, labels)
    i, j = np.triu_indices(len(vectors), k=1)
    small = np.asarray(sizes)[i] < small_px
    small |= np.asarray(sizes)[j] < small_px
    out = {}
    for band, mask in (("small", small), ("large", ~small)):
        g, dd = genuine[mask], d[mask]
        if not g.any() or g.all():
            out[band] = None
            continue
        row = {"genuine_pairs": int(g.sum()), "impostor_pairs": int((~g).sum()),
               "recommended": choose_threshold(dd, g, far), "genuine_max": float(dd[g].max()),
               "impostor_min": float(dd[~g].min())}
        if default_threshold is not None:
            row.update(tar=float(np.mean(dd[g] < default_threshold)), far=float(np.mean(dd[~g] < default_threshold)))
        out[band] = row
    return {"small_px": small_px, **out}


def _summary(x: np.ndarray) -> dict:
    return {"min": float(x.min()), "median": float(np.median(x)), "max": float(x.max())}


def plot_roc(result: dict, path: str | os.PathLike) -> Path:
    """Draw the ROC curve and the two distance histograms of a :func:`calibrate` result into a PNG."""
    from matplotlib.figure import Figure  # no pyplot: the caller's backend is left as it is

    path = Path(path)
    fig = Figure(figsize=(11, 4.5))
    ax_roc, ax_hist = fig.subplots(1, 2)
    draw_roc(ax_roc, result)
    draw_distances(ax_hist, result)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def draw_roc(ax, result: dict) -> None:
    """The ROC curve of a :func:`calibrate` result on ``ax`` (log FAR), its thresholds marked."""
    far, tar = np.array(result["roc"]["far"]), np.array(result["roc"]["tar"])
    floor = 0.5 / max(result["impostor_pairs"], 1)
    ax.step(np.maximum(far, floor), tar, where="post", color="C0")
    ax.set_xscale("log")
    ax.set_xlim(floor / 1.6, 1.0)   # a FAR of 0 is drawn at ``floor``, inside the frame
    ax.set_ylim(0, 1.05)
    ax.plot([result["far_at_threshold"] or floor], [result["tar_at_threshold"]], "o", color="C3",
            label=f"threshold {result['threshold']:.3f} (FAR <= {result['far_target']:g})")
    ax.plot([result["eer"] or floor], [1 - result["eer"]], "s", color="C2",
            label=f"EER {result['eer']:.3f} at {result['eer_threshold']:.3f}")
    if result.get("recommended"):
        rec = result["recommended"]
        ax.plot([max(rec["far"], floor)], [rec["tar"]], "D", color="C4", mfc="none", ms=9,
                label=f"recommended {rec['threshold']:.3f} (FAR {rec['far']:.3f}, TAR {rec['tar']:.2f})")
    if result.get("default"):
        dflt = result["default"]
        ax.plot([max(dflt["far"], floor)], [dflt["tar"]], "^", color="C1",
                label=f"default {dflt['threshold']:g}{' (' + dflt['crop'] + ' crops)' if dflt.get('crop') else ''}: "
                      f"FAR {dflt['far']:.3f}, TAR {dflt['tar']:.2f}")
    ax.set_xlabel("false-accept rate (impostor pairs accepted)")
    ax.set_ylabel("true-accept rate (genuine pairs accepted)")
    ax.set_title(f"ROC, {result.get('model') or 'embeddings'}: {result['people']} people, {result['photos']} photos")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)


def draw_distances(ax, result: dict) -> None:
    """The genuine and impostor distance histograms of a :func:`calibrate` result on ``ax``, the
    thresholds as lines, the legend above the bars."""
    bins = np.array(result["histogram"]["bins"])
    centres, width = (bins[:-1] + bins[1:]) / 2, np.diff(bins)
    tallest = 0.0
    for key, colour in (("impostor", "C3"), ("genuine", "C0")):
        counts = np.array(result["histogram"][key], dtype=float)
        shares = counts / max(counts.sum(), 1)
        tallest = max(tallest, shares.max(initial=0.0))
        ax.bar(centres, shares, width=width, alpha=0.5, color=colour, label=f"{key} pairs ({result[key + '_pairs']})")
    ax.axvline(result["threshold"], color="k", linestyle="--",
               label=f"FAR <= {result['far_target']:g} up to {result['threshold']:.3f}")
    if result.get("recommended"):
        ax.axvline(result["recommended"]["threshold"], color="C4", linestyle="-.",
                   label=f"recommended {result['recommended']['threshold']:.3f}")
    if result.get("default"):
        ax.axvline(result["default"]["threshold"], color="C1", linestyle=":",
                   label=f"model default {result['default']['threshold']:g}")
    ax.set_ylim(0, 1.7 * (tallest or 1.0))   # room above the bars for the legend
    ax.set_xlabel("L2 distance between embeddings")
    ax.set_ylabel("share of pairs")
    ax.set_title("distance distributions")
    ax.legend(loc="upper right", fontsize=9)
