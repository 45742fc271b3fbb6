"""image_io.read_rgb: every input mode becomes (H, W, 3) uint8, every bad file one clear error."""
import io

import numpy as np
import pytest
from PIL import Image

from happyhouse.image_io import ImageReadError, read_rgb


def save(tmp_path, img, name, **kw):
    path = tmp_path / name
    img.save(path, **kw)
    return path


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "CMYK", "I;16", "1"])
def test_every_mode_becomes_rgb_uint8(tmp_path, mode):
    img = Image.new("RGB", (7, 5), (200, 100, 50)).convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "I;16") else "PNG"
    arr = read_rgb(save(tmp_path, img, f"x.{fmt.lower()}", format=fmt))
    assert arr.shape == (5, 7, 3) and arr.dtype == np.uint8


def test_sixteen_bit_gray_is_scaled_not_clipped(tmp_path):
    img = Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16))
    arr = read_rgb(save(tmp_path, img, "g16.png"))
    assert arr.min() == 255
    img = Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16))
    assert abs(int(read_rgb(save(tmp_path, img, "h16.png"))[0, 0, 0]) - 128) <= 1


def test_transparent_pixels_become_white(tmp_path):
    img = Image.new("RGBA", (3, 3), (0, 0, 0, 0))
    assert (read_rgb(save(tmp_path, img, "t.png")) == 255).all()


def test_exif_orientation_is_honoured(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    arr = read_rgb(save(tmp_path, img, "rot.jpg", exif=exif.tobytes()))
    assert arr.shape == (40, 20, 3)


def test_bytes_and_arrays_are_accepted():
    buf = io.BytesIO()
    Image.new("RGB", (6, 4), (1, 2, 3)).save(buf, format="PNG")
    assert read_rgb(buf.getvalue())[0, 0].tolist() == [1, 2, 3]
    assert read_rgb(np.zeros((4, 6))).shape == (4, 6, 3)
    assert read_rgb(np.ones((2, 2, 4), np.float32))[0, 0].tolist() == [255, 255, 255]
    with pytest.raises(ImageReadError, match="expected shape"):
        read_rgb(np.zeros((2, 2, 5)))


def test_missing_empty_folder_and_non_image_files(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_rgb(tmp_path / "missing.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty"):
        read_rgb(tmp_path / "empty.jpg")
    with pytest.raises(ImageReadError, match="folder"):
        read_rgb(tmp_path)
    (tmp_path / "notes.jpg").write_text("this is text, not a photo")
    with pytest.raises(ImageReadError, match="notes.jpg: not an image"):
        read_rgb(tmp_path / "notes.jpg")


def test_truncated_and_corrupt_files(tmp_path):
    good = save(tmp_path, Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)),
                "good.jpg", quality=95)
    data = good.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cut.jpg: the image is truncated or corrupt"):
        read_rgb(tmp_path / "cut.jpg")
    png = save(tmp_path, Image.new("RGB", (8, 8)), "good.png").read_bytes()
    (tmp_path / "bad.png").write_bytes(png[:40] + b"\x00" * 20 + png[60:])
    with pytest.raises(ImageReadError, match="bad.png"):
        read_rgb(tmp_path / "bad.png")


def test_decompression_bomb_is_refused(tmp_path):
    bomb = save(tmp_path, Image.new("L", (3000, 3000)), "bomb.png")  # compresses to a few kB
    assert bomb.stat().st_size < 100_000
    with pytest.raises(ImageReadError, match="decompression bomb"):
        read_rgb(bomb, max_pixels=1_000_000)


def test_the_bomb_check_holds_whatever_pillow_global_limit_says(tmp_path, monkeypatch):
    """Another thread may have lifted Pillow's process-wide limit: our own check still refuses."""
    bomb = save(tmp_path, Image.new("L", (3000, 3000)), "bomb.png")
    pillow_open = Image.open

    def open_after_another_thread_lifted_the_limit(*args, **kwargs):
        Image.MAX_IMAGE_PIXELS = None
        return pillow_open(*args, **kwargs)
    monkeypatch.setattr(Image, "open", open_after_another_thread_lifted_the_limit)
    with pytest.raises(ImageReadError, match="decompression bomb"):
        read_rgb(bomb, max_pixels=1_000_000)


def test_an_unreadable_file_is_one_clear_error(tmp_path, monkeypatch):
    photo = save(tmp_path, Image.new("RGB", (8, 8)), "locked.png")

    def refuse(self):
        raise PermissionError(13, "Permission denied", str(self))
    monkeypatch.setattr(type(photo), "read_bytes", refuse)
    with pytest.raises(ImageReadError, match="locked.png: cannot be read \\(Permission denied\\)"):
        read_rgb(photo)
