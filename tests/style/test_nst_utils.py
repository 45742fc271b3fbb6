"""The course's module nst_utils: its image helpers follow CONFIG, its loaders and style_transfer
keep the course's defaults, and it holds none of the graded functions (they are the notebook's)."""
import numpy as np
import pytest
from PIL import Image

import nst_utils
from happyhouse import image_io

GRADED = ("compute_content_cost", "gram_matrix", "compute_layer_style_cost", "compute_style_cost", "total_cost",
          "model_nn")


def test_no_graded_function_in_the_course_module():
    assert not [name for name in GRADED if hasattr(nst_utils, name)]


def test_the_notebook_helpers_are_here():
    for name in ("CONFIG", "STYLE_LAYERS", "load_image", "reshape_and_normalize_image", "generate_noise_image",
                 "save_image", "deprocess_image", "load_vgg_model", "load_loss_network", "style_transfer",
                 "make_train_step", "show_images", "compare_networks"):
        assert callable(getattr(nst_utils, name)) or name == "STYLE_LAYERS", name


# ---------------------------------------------------------------------------------- images
def test_reshape_and_normalize_any_size_and_mode(tmp_path, pictures):
    content, gray = pictures
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (17, 9), (200, 100, 50, 255)).save(rgba)
    for source in (content, gray, rgba):
        image = nst_utils.reshape_and_normalize_image(source, size=(24, 32))
        assert image.shape == (1, 24, 32, 3) and image.dtype == np.float32
    image = nst_utils.reshape_and_normalize_image(rgba, size=(9, 17))
    np.testing.assert_allclose(image[0, 0, 0], np.array([200, 100, 50]) - nst_utils.CONFIG.MEANS.ravel(), atol=1e-4)


def test_default_size_follows_config(pictures, monkeypatch):
    monkeypatch.setattr(nst_utils.CONFIG, "IMAGE_HEIGHT", 20)
    monkeypatch.setattr(nst_utils.CONFIG, "IMAGE_WIDTH", 28)
    assert nst_utils.reshape_and_normalize_image(pictures[0]).shape == (1, 20, 28, 3)


def test_unreadable_image_is_named(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(image_io.ImageReadError, match="broken.jpg"):
        nst_utils.reshape_and_normalize_image(bad)


def test_noise_image_and_save_round_trip(tmp_path):
    content = np.full((1, 6, 8, 3), 10.0, np.float32)
    noisy = nst_utils.generate_noise_image(content, noise_ratio=0.6, seed=1)
    assert noisy.shape == content.shape
    assert np.all(np.abs(noisy - 4.0) <= 12.0) and noisy.std() > 1
    np.testing.assert_allclose(nst_utils.generate_noise_image(content, noise_ratio=0.0, seed=1), content)
    saved = nst_utils.save_image(tmp_path / "deep" / "x.png", content)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "deep" / "x.png")), saved)
    np.testing.assert_array_equal(saved[0, 0], np.round(10 + nst_utils.CONFIG.MEANS.ravel()))


def test_style_transfer_takes_config_defaults(pictures, monkeypatch, tmp_path):
    monkeypatch.setattr(nst_utils.CONFIG, "IMAGE_HEIGHT", 24)
    monkeypatch.setattr(nst_utils.CONFIG, "IMAGE_WIDTH", 32)
    monkeypatch.setattr(nst_utils.CONFIG, "OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setattr(nst_utils.CONFIG, "CONTENT_IMAGE", str(pictures[0]))
    image, history = nst_utils.style_transfer(style=pictures[1], network="vgg19-random", iterations=2, seed=0,
                                       print_every=0, progress=False)
    assert image.shape == (24, 32, 3) and len(history.total) == 2
    assert (tmp_path / "out" / "generated_image.jpg").is_file()
