"""happyhouse.face.thresholds: one table of default thresholds, keyed by (model, crop path), and its check."""
import math

import pytest

from happyhouse.face import thresholds
from happyhouse.face.embedders import EMBEDDER_NAMES, Embedder


def test_every_model_has_a_threshold_with_evidence_for_every_crop_path():
    assert set(thresholds.THRESHOLDS) == {(m, c) for m in EMBEDDER_NAMES for c in thresholds.CROPS}
    for (model, crop), entry in thresholds.THRESHOLDS.items():
        assert 0 < entry.value < thresholds.MAX_THRESHOLD, (model, crop)
        assert len(entry.evidence) > 30, (model, crop)


def test_the_calibrated_values():
    assert thresholds.default_threshold("nn4.small2", "whole") == 0.7          # the course's
    assert thresholds.default_threshold("inception-resnet-v1", "whole") == 0.7
    assert thresholds.default_threshold("inception-resnet-v1", "aligned") == 0.97
    assert "NOT calibrated" in thresholds.THRESHOLDS["nn4.small2", "aligned"].evidence


def test_unknown_models_and_crop_paths_are_named():
    with pytest.raises(KeyError, match="vgg-face.*known: inception-resnet-v1, nn4.small2"):
        thresholds.default_threshold("vgg-face", "whole")
    with pytest.raises(ValueError, match="crop must be one of"):
        thresholds.default_threshold("nn4.small2", "squashed")


@pytest.mark.parametrize("bad, message", [(0, "positive distance"), (-0.1, "positive distance"),
                                          (math.nan, "positive distance"), (2, "open the door for anyone"),
                                          (2.5, "never more than 2 apart"), (math.inf, "open the door for anyone")])
def test_check_threshold_refuses_what_is_not_in_0_2(bad, message):
    with pytest.raises(ValueError, match=message):
        thresholds.check_threshold(bad)


def test_check_threshold_accepts_distances_below_2_and_names_the_option():
    assert thresholds.check_threshold("0.5") == 0.5 and thresholds.check_threshold(1.999) == 1.999
    with pytest.raises(ValueError, match=r"^--threshold must be a positive distance, not -1\.$"):
        thresholds.check_threshold(-1, what="--threshold")
    with pytest.raises(ValueError, match="the defaults are 0.7-0.97"):
        thresholds.check_threshold(3)


def _embedder(name, threshold=None, aligned=None):
    return Embedder(name, 4, 2, threshold, "test", None, lambda b: b, lambda b: b, aligned_threshold=aligned)


def test_embedders_read_the_table_unless_given_their_own():
    irv1 = _embedder("inception-resnet-v1")
    assert irv1.thresholds == {"whole": 0.7, "aligned": 0.97} and irv1.threshold == 0.7
    assert thresholds.threshold_for(irv1, "aligned") == irv1.threshold_for("aligned") == 0.97
    own = _embedder("fake", 0.4, 0.6)
    assert thresholds.threshold_for(own, "whole") == 0.4 and thresholds.threshold_for(own, "aligned") == 0.6
    assert _embedder("fake", 0.4).thresholds == {"whole": 0.4, "aligned": 0.4}
    with pytest.raises(KeyError, match="no default threshold for model 'fake'"):
        _embedder("fake")


def test_threshold_for_an_object_without_per_path_thresholds():
    class Named:
        name = "inception-resnet-v1"

    class OneThreshold(Named):
        threshold = 0.3

    assert thresholds.threshold_for(Named(), "aligned") == 0.97       # the table's, by name
    assert thresholds.threshold_for(OneThreshold(), "aligned") == 0.3  # its own, for every path
    with pytest.raises(ValueError, match="crop must be one of"):
        thresholds.threshold_for(Named(), "auto")


def test_describe_gives_each_path_its_value_and_evidence():
    text = thresholds.describe("inception-resnet-v1")
    assert "Threshold 0.7 (L2 distance) on whole crops: calibrated on the course's 96x96 images" in text
    assert "Threshold 0.97 (L2 distance) on aligned crops: calibrated on $FACES_DATA/people" in text
