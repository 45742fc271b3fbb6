"""bench/watch.py's own pieces: when each visit's face appears, and the latency of each visit's decision."""
import numpy as np
import pytest

from bench import watch


def test_appearances_follow_the_camera_clock():
    per_visit = int((watch.EMPTY_S + watch.FACE_S) * watch.CAMERA_FPS)     # 60 frames
    t = watch.appearances(100.0, seconds=9.0, per_visit=per_visit, first_face=15)
    assert t == pytest.approx([101.0, 105.0])                              # the third visit starts after 9 s


def test_latency_is_the_first_decision_within_each_visit():
    appeared = np.array([1.0, 5.0, 9.0])
    # visit 1 decided twice (first counts), visit 2 never, a decision before any face is ignored
    assert watch.latencies(appeared, [0.5, 1.3, 1.9, 9.25]) == pytest.approx([0.3, 0.25])
