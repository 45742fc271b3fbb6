"""Pictures in and out of style transfer: reading any picture as RGB, the networks' normalisation
(RGB minus the ImageNet means, shape (1, H, W, 3) float32) and back, and saving."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from happyhouse import data, image_io

#: The ImageNet RGB means that the course subtracts (MatConvNet's normalisation), (1, 1, 1, 3).
MEANS = np.array([123.68, 116.779, 103.939], dtype=np.float32).reshape((1, 1, 1, 3))


def read_image(source) -> np.ndarray:
    """``source`` (a path, a name in the course's images/, bytes or an array) as (H, W, 3) uint8
    RGB at its own size. Unreadable files raise image_io.ImageReadError, missing ones
    data.DataNotFoundError."""
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        source = path if path.exists() else data.find_file("images", source)
    return image_io.read_rgb(source)


def digest(rgb: np.ndarray) -> str:
    """A short fingerprint of a picture (H, W, 3) uint8: its shape and pixels."""
    return hashlib.sha256(repr(rgb.shape).encode() + np.ascontiguousarray(rgb).tobytes()).hexdigest()[:16]


def load_image(source, size) -> np.ndarray:
    """``source`` as :func:`read_image` reads it, resized to ``size`` = (height, width): (H, W, 3) uint8."""
    rgb = read_image(source)
    height, width = size
    if rgb.shape[:2] != (height, width):
        rgb = np.asarray(Image.fromarray(rgb).resize((width, height), Image.LANCZOS))
    return rgb


def normalize(source, size, means=MEANS) -> np.ndarray:
    """A picture (anything :func:`load_image` reads) -> (1, H, W, 3) float32, RGB minus ``means``."""
    return (load_image(source, size)[None].astype(np.float32) - means).astype(np.float32)


def pixel_range(means=MEANS) -> tuple[np.ndarray, np.ndarray]:
    """(low, high), each (1, 1, 1, 3): the normalised values of 8-bit pixels, what
    :func:`deprocess` keeps (an optimiser bounded by them paints no value the picture loses)."""
    return -means, 255.0 - means


def deprocess(image, means=MEANS) -> np.ndarray:
    """(1, H, W, 3) normalised image -> (H, W, 3) uint8 RGB (adds ``means``, clips)."""
    image = np.asarray(image, dtype=np.float32) + means
    return np.clip(np.round(image[0]), 0, 255).astype(np.uint8)


def write_rgb(path, rgb: np.ndarray) -> np.ndarray:
    """Write (H, W, 3) uint8 ``rgb`` to ``path`` (format from its suffix, JPEG at quality 95,
    folders created). Returns ``rgb``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, **({"quality": 95} if path.suffix.lower() in (".jpg", ".jpeg") else {}))
    return rgb


def save_image(path, image, means=MEANS) -> np.ndarray:
    """Save a (1, H, W, 3) normalised image to ``path``; returns the saved (H, W, 3) uint8 picture."""
    return write_rgb(path, deprocess(image, means))
