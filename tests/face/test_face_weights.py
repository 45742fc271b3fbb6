"""happyhouse.face.weights, the course's CSV weights: round trip, cache, and one clear error for every problem."""
import os
import shutil

import numpy as np
import pytest

from happyhouse import data
from happyhouse.errors import DataNotFoundError, WeightsError
from happyhouse.face import weights
from happyhouse.face.network import faceRecoModel


def _write_csv(path, values):
    """One line of comma-separated numbers, as the course's export."""
    np.savetxt(path, np.reshape(values, (1, -1)), delimiter=",", fmt="%.9g")


@pytest.fixture(scope="module")
def synthetic_weights(tmp_path_factory):
    """A complete weights/ folder of random values in the course's CSV layout, and the arrays written."""
    folder = tmp_path_factory.mktemp("course") / "weights"
    folder.mkdir()
    rng = np.random.default_rng(42)
    arrays = {}
    for name, shape in weights.weight_files().items():
        values = rng.standard_normal(shape).astype(np.float32)
        if name.endswith("_v.csv"):  # variances are positive
            values = np.abs(values) + 0.5
        _write_csv(folder / name, values)
        arrays[name] = values
    return folder, arrays


@pytest.fixture(scope="module")
def model():
    return faceRecoModel(input_shape=(3, 96, 96))


def _copy_as_links(source, target):
    """A weights/ folder under ``target`` whose files link to ``source``'s (so tests can break some)."""
    folder = target / "weights"
    folder.mkdir()
    for name in os.listdir(source):
        os.symlink(source / name, folder / name)
    return folder


def test_the_model_needs_224_csv_files():
    files = weights.weight_files()
    assert len(files) == 224  # 37 convs x 2 + 37 batch norms x 4 + dense x 2
    assert files["conv1_w.csv"] == (64, 3, 7, 7)
    assert files["bn1_v.csv"] == (64,)
    assert files["inception_3a_5x5_bn1_m.csv"] == (16,)
    assert files["dense_w.csv"] == (128, 736)


def test_round_trip_puts_every_value_where_the_course_puts_it(synthetic_weights, model, tmp_path):
    folder, arrays = synthetic_weights
    weights.set_weights(model, weights.load_weights(folder, cache_dir=tmp_path))
    conv1_kernel, conv1_bias = model.get_layer("conv1").get_weights()
    # Keras kernel[kh, kw, in, out] is the Torch export's [out, in, kh, kw]
    assert conv1_kernel[4, 1, 2, 17] == arrays["conv1_w.csv"][17, 2, 4, 1]
    np.testing.assert_array_equal(conv1_bias, arrays["conv1_b.csv"])
    kernel = model.get_layer("inception_4e_5x5_conv2").get_weights()[0]
    assert kernel[0, 3, 63, 127] == arrays["inception_4e_5x5_conv2_w.csv"][127, 63, 0, 3]
    gamma, beta, mean, var = model.get_layer("inception_3a_5x5_bn1").get_weights()
    for got, part in zip((gamma, beta, mean, var), "wbmv"):
        np.testing.assert_array_equal(got, arrays[f"inception_3a_5x5_bn1_{part}.csv"])
    dense_kernel, dense_bias = model.get_layer("dense_layer").get_weights()
    assert dense_kernel[700, 5] == arrays["dense_w.csv"][5, 700]
    np.testing.assert_array_equal(dense_bias, arrays["dense_b.csv"])


def test_first_load_writes_one_cache_file_and_later_loads_parse_no_csv(synthetic_weights, tmp_path, monkeypatch):
    folder, _ = synthetic_weights
    first = weights.load_weights(folder, cache_dir=tmp_path)
    cached = list(tmp_path.iterdir())
    assert len(cached) == 1 and cached[0].suffix == ".npz"

    def no_parsing(*args):
        raise AssertionError("a cached load parsed a CSV")

    monkeypatch.setattr(weights, "read_csv", no_parsing)
    second = weights.load_weights(folder, cache_dir=tmp_path)
    for layer in weights.WEIGHTS:
        for a, b in zip(first[layer], second[layer]):
            np.testing.assert_array_equal(a, b)


def test_cache_lives_in_xdg_cache_home_by_default(synthetic_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    weights.load_weights(synthetic_weights[0])
    assert len(list((tmp_path / "happyhouse").glob("nn4.small2-*.npz"))) == 1


def test_changed_csv_gets_a_new_cache_and_a_damaged_cache_is_rebuilt(synthetic_weights, tmp_path):
    folder = _copy_as_links(synthetic_weights[0], tmp_path)
    cache = tmp_path / "cache"
    weights.load_weights(folder, cache_dir=cache)
    (folder / "dense_b.csv").unlink()
    _write_csv(folder / "dense_b.csv", np.arange(128, dtype=np.float32))
    loaded = weights.load_weights(folder, cache_dir=cache)
    np.testing.assert_array_equal(loaded["dense_layer"][1], np.arange(128))
    assert len(list(cache.iterdir())) == 2
    for path in cache.iterdir():
        path.write_bytes(b"not a zip file")
    loaded = weights.load_weights(folder, cache_dir=cache)
    np.testing.assert_array_equal(loaded["dense_layer"][1], np.arange(128))


def test_every_missing_and_damaged_file_is_listed_and_the_model_is_untouched(synthetic_weights, model, tmp_path):
    folder = _copy_as_links(synthetic_weights[0], tmp_path)
    for name in ("conv2_w.csv", "inception_5b_1x1_bn_v.csv"):
        (folder / name).unlink()
    text = (synthetic_weights[0] / "conv3_w.csv").read_text()
    damaged = {
        "conv3_w.csv": text[: len(text) // 2],                                   # truncated
        "bn1_w.csv": "0.1,abc," + ",".join(["0.5"] * 62) + "\n",                  # non-numeric
        "inception_3a_1x1_conv_b.csv": ",".join(["0.5"] * 65) + "\n",             # wrong shape
        "dense_b.csv": "",                                                        # empty
    }
    for name, content in damaged.items():
        (folder / name).unlink()
        (folder / name).write_text(content)
    before = [w.copy() for w in model.get_weights()]

    with pytest.raises(WeightsError) as caught:
        weights.set_weights(model, weights.load_weights(folder, cache_dir=tmp_path / "cache"))

    err = caught.value
    assert sorted(err.missing) == ["conv2_w.csv", "inception_5b_1x1_bn_v.csv"]
    assert sorted(name for name, _, _ in err.mismatches) == sorted(damaged)
    expected = dict((name, shape) for name, shape, _ in err.mismatches)
    assert expected["inception_3a_1x1_conv_b.csv"] == (64,)
    message = str(err)
    for name in [*err.missing, *damaged]:
        assert name in message
    assert "inception_3a_1x1_conv_b.csv: expected shape (64,) (64 values), found 65 values" in message
    assert "bn1_w.csv: expected shape (64,) (64 values), found text that is not comma-separated numbers" in message
    assert "dense_b.csv: expected shape (128,) (128 values), found an empty file" in message
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert not (tmp_path / "cache").exists()


COURSE_COPY_MISSING = [  # the five files absent from every public copy (see the course data's SOURCES.txt)
    "inception_3c_3x3_conv2_w.csv", "inception_4e_3x3_conv2_w.csv", "inception_5a_1x1_conv_w.csv",
    "inception_5a_3x3_conv2_w.csv", "inception_5b_3x3_conv2_w.csv"]


def test_the_course_folder_error_names_exactly_its_missing_files(course_weights):
    missing_here = sorted(set(weights.weight_files()) - {p.name for p in course_weights.iterdir()})
    if not missing_here:
        pytest.skip(f"the course weights in {course_weights} are complete here")
    with pytest.raises(WeightsError) as caught:
        weights.load_weights(course_weights)
    assert sorted(caught.value.missing) == missing_here
    if len(list(course_weights.glob("*.csv"))) == 221:  # the shared course copy
        assert sorted(caught.value.missing) == COURSE_COPY_MISSING
    assert caught.value.mismatches == []
    message = str(caught.value)
    assert all(name in message for name in missing_here) and "fetch" in message


def test_a_model_that_is_not_the_courses_is_refused_before_any_weight_is_set(synthetic_weights, tmp_path):
    import keras

    inputs = keras.Input((3, 96, 96))
    other = keras.Model(inputs, keras.layers.Dense(4, name="conv1")(keras.layers.Flatten()(inputs)))
    before = [w.copy() for w in other.get_weights()]
    with pytest.raises(WeightsError, match="no layer named 'bn1'"):
        weights.set_weights(other, weights.load_weights(synthetic_weights[0], cache_dir=tmp_path))
    for old, new in zip(before, other.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_the_error_names_the_folder_relative_to_course_data(synthetic_weights, tmp_path, monkeypatch):
    """Messages name $COURSE_DATA/weights, not the machine's folder (they end up in committed notebooks)."""
    folder = _copy_as_links(synthetic_weights[0], tmp_path)
    (folder / "conv1_w.csv").unlink()
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    with pytest.raises(WeightsError) as caught:
        weights.load_weights(folder, cache_dir=tmp_path / "cache")
    assert "weights in $COURSE_DATA/weights are incomplete" in str(caught.value)
    assert str(tmp_path) not in str(caught.value) and caught.value.folder == folder
    assert weights.display_path(weights.data.PROJECT_ROOT / "weights") == "<project>/weights"
    assert weights.display_path("/nowhere/else") == "/nowhere/else"


def split_weights(synthetic_weights, tmp_path, monkeypatch):
    """The weights as fetch leaves a partial $COURSE_DATA: all but the last 5 CSVs there, those 5 in the
    project's weights/. Returns (the $COURSE_DATA weights folder, the names)."""
    folder, arrays = synthetic_weights
    env, project = tmp_path / "env" / "weights", tmp_path / "project" / "weights"
    env.mkdir(parents=True)
    project.mkdir(parents=True)
    names = sorted(arrays)
    for name in names:
        shutil.copy(folder / name, (project if name in names[-5:] else env) / name)
    monkeypatch.setenv("COURSE_DATA", str(env.parent))
    monkeypatch.setattr(data, "PROJECT_ROOT", project.parent)
    monkeypatch.setattr(data, "INSTALLED", False)
    return env, names


def test_a_partial_course_folder_is_completed_by_the_files_fetch_added(synthetic_weights, tmp_path, monkeypatch):
    """fetch keeps what $COURSE_DATA has and puts the rest into the project: the loader reads both;
    an explicit folder is the only one read."""
    folder, _ = synthetic_weights
    env, names = split_weights(synthetic_weights, tmp_path, monkeypatch)
    with pytest.raises(WeightsError, match=r"Missing \(5 of"):
        weights.load_weights(env, cache_dir=tmp_path / "cache")
    loaded = weights.load_weights(cache_dir=tmp_path / "cache")
    moved = next(layer for layer in weights.WEIGHTS if names[-1] in weights.layer_files(layer))
    for got, want in zip(loaded[moved], weights.load_weights(folder, cache_dir=tmp_path / "cache")[moved]):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(DataNotFoundError, match="nowhere"):
        weights.load_weights(tmp_path / "nowhere")


def test_the_door_model_loads_from_a_partial_folder_and_the_project(synthetic_weights, tmp_path, monkeypatch):
    """load_embedder("nn4.small2"), what every door command uses, takes its weights as load_weights does."""
    from happyhouse.face import embedders
    env, _ = split_weights(synthetic_weights, tmp_path, monkeypatch)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    embedder = embedders.load_embedder("nn4.small2", precision="float32")
    assert embedder.embed(np.zeros((1, 96, 96, 3), np.uint8)).shape == (1, 128)
    with pytest.raises(WeightsError, match=r"Missing \(5 of"):
        embedders.load_embedder("nn4.small2", env)
