"""bench/door_accuracy.py's dlib side: the region sent to dlib, its boxes, its decision and the pipe."""
import os

import numpy as np
import pytest

from bench import dlib_embed, door_accuracy


def test_the_region_keeps_the_face_and_context_inside_the_photo():
    image = np.arange(200 * 300 * 3, dtype=np.uint32).reshape(200, 300, 3).astype(np.uint8)
    part, box = door_accuracy.region_of(image, (10, 50, 40, 60))     # x, y, w, h
    pad = int(door_accuracy.DLIB_CONTEXT * 60)
    assert part.shape == (60 + 2 * pad, 10 + 40 + pad, 3)              # clipped at the left edge
    assert box.tolist() == [10, pad, 40, 60]
    np.testing.assert_array_equal(part[box[1], box[0]], image[50, 10])


def test_dlib_boxes_and_overlap():
    assert dlib_embed.square(np.array([10, 20, 40, 60]), (200, 300, 3)) == (20, 60, 80, 0)
    assert dlib_embed.iou((0, 10, 10, 0), (0, 10, 10, 0)) == 1.0
    assert dlib_embed.iou((0, 10, 10, 0), (0, 20, 10, 10)) == 0.0
    assert dlib_embed.iou((0, 10, 10, 0), (0, 15, 10, 5)) == pytest.approx(50 / 150)


def test_dlib_names_the_nearest_under_its_tolerance():
    gallery = [door_accuracy.Item("ann", "a", "orig", None, None), door_accuracy.Item("bob", "b", "orig", None, None)]
    gallery[0].dlib, gallery[1].dlib = np.eye(128)[0], np.eye(128)[1]
    probe = door_accuracy.Item("x", "x", "orig", None, None)
    probe.dlib = np.eye(128)[0] * 0.5 + np.eye(128)[1] * 0.1            # 0.51 from ann, 1.12 from bob
    assert door_accuracy.dlib_name_of(probe, gallery) == "ann"
    probe.dlib = np.eye(128)[0] * 0.3                                  # 0.7 from ann: over 0.6
    assert door_accuracy.dlib_name_of(probe, gallery) is None


@pytest.mark.skipif(not os.environ.get("DLIB_PYTHON"), reason="DLIB_PYTHON (an interpreter with dlib's "
                    "face_recognition, docs/door.md) is not set")
def test_dlib_encodes_through_the_pipe():
    """A face-less image: dlib's detector finds nothing, the box is encoded anyway, 128-d and unit-ish."""
    rng = np.random.default_rng(0)
    item = door_accuracy.Item("x", "x", "orig", None, None)
    item.region = (rng.integers(0, 256, (120, 120, 3), dtype=np.uint8), np.array([20, 20, 80, 80]))
    door_accuracy.dlib_embed([item], os.environ["DLIB_PYTHON"])
    assert item.dlib.shape == (128,) and not item.dlib_found and item.region is None
    assert 0.5 < np.linalg.norm(item.dlib) < 1.5
