"""happyhouse.face.embedders: the two embedders behind one interface, their preprocessing and batching."""
import numpy as np
import pytest

from happyhouse import data
from happyhouse.errors import WeightsError
from happyhouse.face import embedders
from happyhouse.face.network import faceRecoModel
from happyhouse.face.thresholds import THRESHOLDS
from happyhouse.image_io import read_rgb

RESIDENTS = ["andrew", "arnaud", "benoit", "bertrand", "dan", "danielle", "felix", "kevin", "kian",
             "sebastiano", "tian", "younes"]


def _resident_file(name):
    return f"{name}.png" if name == "danielle" else f"{name}.jpg"


@pytest.fixture(scope="module")
def irv1():
    return embedders.load_embedder("inception-resnet-v1")


def test_load_embedder_is_cached_and_describes_itself(irv1):
    assert embedders.load_embedder() is irv1
    assert (irv1.name, irv1.input_size, irv1.dim) == ("inception-resnet-v1", 160, 512)
    whole, aligned = THRESHOLDS["inception-resnet-v1", "whole"].value, THRESHOLDS["inception-resnet-v1", "aligned"].value
    assert irv1.threshold == whole == irv1.threshold_for("whole")
    assert irv1.threshold_for("aligned") == aligned > irv1.threshold
    assert "160" in irv1.description and str(irv1.threshold) in irv1.description
    assert str(aligned) in irv1.description
    with pytest.raises(ValueError, match="crop must be one of"):
        irv1.threshold_for("squashed")
    with pytest.raises(ValueError, match="nn4.small2"):
        embedders.load_embedder("vgg-face")


def test_embed_any_sizes_in_batches_gives_the_same_unit_norm_rows(irv1, monkeypatch):
    rng = np.random.default_rng(0)
    faces = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(96, 96), (200, 150), (160, 160)]]
    calls = []
    run = irv1._run
    monkeypatch.setattr(irv1, "_run", lambda x: calls.append(len(x)) or run(x))
    batched = irv1.embed(faces, batch_size=2)
    assert calls == [2, 1]  # one model call per batch
    one_by_one = np.concatenate([irv1.embed([face]) for face in faces])
    assert batched.shape == (3, 512) and batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-4)


def test_preprocess_resizes_and_prewhitens_each_face(irv1):
    rng = np.random.default_rng(1)
    batch = irv1.preprocess(rng.integers(0, 256, (2, 96, 96, 3), dtype=np.uint8))
    assert batch.shape == (2, 160, 160, 3) and batch.dtype == np.float32
    np.testing.assert_allclose(batch.mean(axis=(1, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(batch.std(axis=(1, 2, 3)), 1.0, atol=1e-3)
    flat = irv1.preprocess(np.full((1, 160, 160, 3), 7, np.uint8))  # constant image: std floor, no nan
    assert np.all(flat == 0)


def test_embed_refuses_a_single_unbatched_face(irv1):
    with pytest.raises(ValueError, match=r"\(m, H, W, 3\)"):
        irv1.embed(np.zeros((96, 96, 3), np.uint8))


def test_offline_embedder_gives_the_course_door_distances(course_images, irv1):
    """The door's decisions at its default threshold for whole crops: younes at camera_0 in, kian's card at
    camera_2 out, and camera_0's nearest resident is younes."""
    faces = {name: read_rgb(data.find_file("images", _resident_file(name))) for name in RESIDENTS}
    gallery = irv1.embed(list(faces.values()))
    cameras = irv1.embed([read_rgb(data.find_file("images", f"camera_{i}.jpg")) for i in (0, 2)])
    distances = np.linalg.norm(gallery[None] - cameras[:, None], axis=-1)   # (2 cameras, 12 residents)
    limit = irv1.threshold_for("whole")
    assert distances[0, RESIDENTS.index("younes")] < limit
    assert distances[1, RESIDENTS.index("kian")] >= limit
    assert RESIDENTS[int(np.argmin(distances[0]))] == "younes"


def test_course_embedder_wraps_the_keras_model_once():
    model = faceRecoModel(input_shape=(3, 96, 96))
    first, second = embedders.course_embedder(model), embedders.course_embedder(model)
    assert (first.name, first.input_size, first.dim) == ("nn4.small2", 96, 128)
    assert first._run is second._run and embedders.course_embedder(first) is first
    assert first.thresholds == {"whole": 0.7, "aligned": 0.7}
    with pytest.raises(TypeError, match="course's Keras FaceNet"):
        embedders.course_embedder(object())


def test_nn4_embedder_needs_the_complete_weights(tmp_path):
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "conv1_b.csv").write_text("0.1\n")
    with pytest.raises(WeightsError, match="Missing"):
        embedders.load_embedder("nn4.small2", weights_dir=tmp_path / "weights")
