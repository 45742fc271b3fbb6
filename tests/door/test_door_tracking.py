"""happyhouse.door.tracking: faces followed by box overlap and decided K of N; the cooldown.
Synthetic sightings only (no model)."""
import pytest

from happyhouse.door.tracking import UNKNOWN, Cooldown, Sighting, Tracker, iou


def seen(name, box=(100, 100, 80, 100), distance=None):
    return Sighting(box, name, 0.5 if distance is None else distance, 0.97)


def feed(tracker, names, box=(100, 100, 80, 100)):
    """One sighting per frame at ``box`` (drifting 4 px a frame) -> [(frame, decision)]."""
    out = []
    for i, name in enumerate(names):
        moved = (box[0] + 4 * i, box[1], box[2], box[3])
        out += [(i, d) for d in tracker.update([seen(name, moved)], t=i / 5)]
    return out


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (10, 0, 10, 10)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_name_when_k_of_last_n_agree():
    (frame, d), = feed(Tracker(3, 5), ["kian", UNKNOWN, "kian", "kian", "kian", "kian"])
    assert (frame, d.name, d.frames, d.track) == (3, "kian", 3, 1)
    assert d.first_t == 0 and d.t == pytest.approx(0.6)


def test_unknown_after_n_without_agreement():
    (frame, d), = feed(Tracker(3, 5), ["kian", "dan", "kian", "dan", UNKNOWN, "kian"])
    assert (frame, d.name, d.frames) == (4, UNKNOWN, 5)


def test_one_lucky_frame_does_not_open():
    decisions = feed(Tracker(3, 5), [UNKNOWN, "kian", UNKNOWN, UNKNOWN, UNKNOWN, "kian", UNKNOWN])
    assert [d.name for _, d in decisions] == [UNKNOWN]


def test_distance_is_the_best_agreeing_sighting():
    tracker = Tracker(2, 3)
    tracker.update([seen("kian", distance=0.6)], 0)
    tracker.update([seen("dan", distance=0.1)], 0.2)
    (d,) = tracker.update([seen("kian", distance=0.4)], 0.4)
    assert (d.name, d.distance) == ("kian", 0.4)


def test_two_faces_two_tracks():
    tracker = Tracker(3, 5)
    decisions = []
    for i in range(5):
        decisions += tracker.update([seen("kian", (50 + i, 100, 80, 100)), seen(UNKNOWN, (400 - i, 90, 70, 90))], i)
    assert sorted((d.track, d.name) for d in decisions) == [(1, "kian"), (2, UNKNOWN)]


def test_cut_starts_a_new_track_and_lost_tracks_close():
    tracker = Tracker(3, 5, max_missing=2)
    feed(tracker, ["kian"] * 3)
    assert [t.id for t in tracker.tracks] == [1]
    tracker.update([seen("kian", (400, 300, 80, 100))], 1.0)     # far away: a new face
    assert [t.id for t in tracker.tracks] == [1, 2]
    for t in (1.2, 1.4):
        tracker.update([seen("kian", (400, 300, 80, 100))], t)
    assert [t.id for t in tracker.tracks] == [2]                 # track 1 unseen for 3 frames


def test_decided_once_per_track():
    assert len(feed(Tracker(3, 5), ["kian"] * 20)) == 1


def test_a_face_unknown_at_first_is_named_once_k_frames_agree():
    """Someone too far away to be named at first, then close: unknown once, then the name, then nothing."""
    decisions = feed(Tracker(3, 5), [UNKNOWN] * 5 + ["kian"] * 20)
    assert [(frame, d.name) for frame, d in decisions] == [(4, UNKNOWN), (7, "kian")]


def test_bad_k_n():
    with pytest.raises(ValueError):
        Tracker(6, 5)


def test_cooldown():
    cooldown = Cooldown(60)
    assert cooldown.admit("kian", 0) and not cooldown.admit("kian", 30) and cooldown.admit("kian", 61)
    assert cooldown.admit("dan", 30)
    assert cooldown.admit(UNKNOWN, 1) and cooldown.admit(UNKNOWN, 2)
