"""happyhouse.door.calibration: pairs, ROC, EER, threshold at a false-accept rate, the plot, and `calibrate`."""
import json

import numpy as np
import pytest
from PIL import Image

from happyhouse.door import calibration as cal
from happyhouse.door import cli
from test_door_cli import ThumbnailEmbedder, pattern


def test_pair_distances_match_a_double_loop():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(7, 5))
    labels = ["a", "b", "a", "c", "b", "a", "c"]
    d, genuine = cal.pair_distances(vectors, labels)
    expected = [(np.linalg.norm(vectors[i] - vectors[j]), labels[i] == labels[j])
                for i in range(7) for j in range(i + 1, 7)]
    assert len(d) == 21
    np.testing.assert_allclose(d, [e[0] for e in expected], atol=1e-9)
    assert genuine.tolist() == [e[1] for e in expected]


def test_roc_eer_and_threshold_on_a_hand_worked_case():
    genuine_d, impostor_d = [0.1, 0.2, 0.3], [0.25, 0.5, 0.6, 0.7]
    d = np.array(genuine_d + impostor_d)
    genuine = np.array([True] * 3 + [False] * 4)
    thresholds, far, tar = cal.roc(d, genuine)
    # accepted means distance < threshold
    assert thresholds[:7].tolist() == [0.1, 0.2, 0.25, 0.3, 0.5, 0.6, 0.7]
    assert far.tolist() == [0, 0, 0, 0.25, 0.25, 0.5, 0.75, 1.0]
    np.testing.assert_allclose(tar, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1, 1])
    eer, at = cal.equal_error_rate(thresholds, far, tar)
    assert at == 0.3 and eer == pytest.approx((0.25 + 1 / 3) / 2)
    assert cal.threshold_at_far(thresholds, far, 0.0) == 0.25
    assert cal.threshold_at_far(thresholds, far, 0.25) == 0.5
    result = cal.calibrate(np.array([[0.0], [0.1], [5.0], [5.2]]), ["a", "a", "b", "b"], far=0.0,
                           default_threshold=1.0)
    assert result["eer"] == 0.0 and result["tar_at_threshold"] == 1.0 and result["far_at_threshold"] == 0.0
    assert result["default"] == {"threshold": 1.0, "far": 0.0, "tar": 1.0}
    assert (result["genuine_pairs"], result["impostor_pairs"]) == (2, 4)


def test_calibration_refuses_folders_without_pairs(tmp_path):
    with pytest.raises(cal.CalibrationError, match="not a folder"):
        cal.photos_by_person(tmp_path / "nope")
    (tmp_path / "ann").mkdir()
    pattern(tmp_path / "ann" / "1.png", 1)
    pattern(tmp_path / "ann" / "2.png", 2)
    with pytest.raises(cal.CalibrationError, match="at least two people"):
        cal.photos_by_person(tmp_path)
    (tmp_path / "bob").mkdir()
    pattern(tmp_path / "bob" / "1.png", 3)
    assert [p for p, _ in cal.photos_by_person(tmp_path)] == ["ann", "ann", "bob"]
    with pytest.raises(cal.CalibrationError, match="two or more photos"):
        cal.calibrate(np.eye(3), ["a", "b", "c"])


def test_calibrate_command_writes_plot_and_json(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "load_embedder", lambda name: ThumbnailEmbedder())
    folder = tmp_path / "people"
    for person, seeds in {"ann": (1, 2, 3), "bob": (4, 5), "cid": (6,)}.items():
        (folder / person).mkdir(parents=True)
        for s in seeds:
            pattern(folder / person / f"{s}.png", s)
    (folder / "bob" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    out = tmp_path / "out"
    code = cli.main(["--crop", "whole", "calibrate", str(folder), "--out", str(out), "--far", "0.1"])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    assert "skipped:" in stderr and "broken.jpg" in stderr
    result = json.loads((out / "calibration.json").read_text())
    assert (result["people"], result["photos"], result["skipped"]) == (3, 6, 1)
    assert (result["genuine_pairs"], result["impostor_pairs"]) == (4, 11)
    assert result["far_at_threshold"] <= 0.1
    # every photo was used whole: the default reported is the model's for whole crops
    assert result["crops"] == {"whole": 6}
    assert result["default"]["crop"] == "whole" and result["default"]["threshold"] == ThumbnailEmbedder.threshold
    assert result["default"]["threshold_from"] == "model default for whole crops"
    assert set(result["recommended"]) == {"threshold", "far", "tar"} and result["held_out"]["genuine"] == 4
    assert "EER" in stdout and str(out / "roc.png") in stdout and "recommended threshold" in stdout
    with Image.open(out / "roc.png") as img:
        assert img.format == "PNG" and img.size[0] > 800
    code = cli.main(["calibrate", str(folder), "--far", "2"])
    assert code == 2 and "--far must be between 0 and 1" in capsys.readouterr().err


def test_calibrate_checks_its_output_folder_before_embedding(tmp_path, capsys, monkeypatch):
    def no_embedder(name):
        raise AssertionError("the photos were embedded before the output folder was checked")
    monkeypatch.setattr(cli, "load_embedder", no_embedder)
    (tmp_path / "notes.txt").write_text("kept")
    code = cli.main(["calibrate", str(tmp_path), "--out", str(tmp_path / "notes.txt" / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "notes.txt is a file, not a folder" in err and "Traceback" not in err


def test_choose_threshold_keeps_the_true_accepts_with_the_widest_margin():
    # genuine 0.1 0.2 0.3 | impostors 0.25 0.5 0.6 0.7
    d = np.array([0.1, 0.2, 0.3, 0.25, 0.5, 0.6, 0.7])
    genuine = np.array([True] * 3 + [False] * 4)
    # FAR <= 0.25 allows the 0.25 impostor: all genuine accepted; halfway between 0.3 and the next impostor 0.5
    assert cal.choose_threshold(d, genuine, far=0.25) == pytest.approx(0.4)
    # FAR 0: only up to 0.25 (genuine 0.1, 0.2), halfway between 0.2 and the impostor 0.25
    assert cal.choose_threshold(d, genuine, far=0.0) == pytest.approx(0.225)
    # separable: between the farthest genuine and the nearest impostor
    assert cal.choose_threshold([0.2, 0.4, 0.9, 1.0], [True, True, False, False], far=0.01) == pytest.approx(0.65)


def test_leave_one_person_out_checks_each_person_with_a_threshold_chosen_without_them():
    # on a line: ann 0, 0.1 | bob 0.5, 0.6 | cid 3.0, 3.8 | dee 10
    vectors = np.array([[0.0, 0], [0.1, 0], [0.5, 0], [0.6, 0], [3.0, 0], [3.8, 0], [10.0, 0]])
    labels = ["ann", "ann", "bob", "bob", "cid", "cid", "dee"]
    held = cal.leave_one_person_out(vectors, labels, far=0.01)
    # without cid (or dee) the choice is 0.25 (between 0.1 and the ann-bob impostors at 0.4): cid's 0.8 is refused;
    # without ann (or bob) it is 1.6 (1.85): ann and bob's 4 impostor pairs, 0.4-0.6, are accepted, each time
    assert (held["genuine"], held["genuine_accepted"]) == (3, 2)
    assert [(r["person"], r["distance"], r["threshold"]) for r in held["genuine_refused"]] == [("cid", 0.8, 0.25)]
    assert (held["impostor"], held["impostor_accepted"]) == (2 * 18, 8)
    assert held["tar"] == pytest.approx(2 / 3) and held["far"] == pytest.approx(8 / 36)
    assert (held["threshold_min"], held["threshold_max"]) == (pytest.approx(0.25), pytest.approx(1.85))
    result = cal.calibrate(vectors, labels, far=0.01)
    assert result["held_out"]["genuine_refused"] == held["genuine_refused"]
    assert result["recommended"] == {"threshold": pytest.approx(0.25), "far": 0.0, "tar": pytest.approx(2 / 3)}
    with pytest.raises(cal.CalibrationError, match="two or more photos"):
        cal.leave_one_person_out(vectors[:3], labels[:3])
