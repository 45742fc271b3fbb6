"""Reading any photo a user gives into one RGB array, or one clear error.

Every module reads images through :func:`read_rgb`: EXIF orientation is honoured;
RGB, RGBA, LA, grayscale, palette, 16-bit and CMYK inputs become 8-bit RGB; missing,
empty, truncated, corrupt, non-image files and decompression bombs raise
:class:`ImageReadError`, which names the file and says what is wrong.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Largest image accepted, in pixels (about 8000 x 8000); larger files are refused as bombs.
MAX_PIXELS = 64_000_000


class ImageReadError(ValueError):
    """An image file could not be read; the message names the file and the reason."""


def read_rgb(source: str | os.PathLike | bytes | np.ndarray, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read ``source`` (a path, encoded bytes, or an array) as RGB.

    Returns an array of shape (H, W, 3), dtype uint8. An array given is checked and
    converted: (H, W) grayscale, (H, W, 3) RGB or (H, W, 4) RGBA; floats in [0, 1] or [0, 255].
    """
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source)
    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    if not isinstance(source, (bytes, bytearray)):
        path = Path(source)
        if not path.exists():
            raise ImageReadError(f"{name}: no such file. Check the path (working folder: {os.getcwd()}).")
        if path.is_dir():
            raise ImageReadError(f"{name}: is a folder, not an image file.")
        if path.stat().st_size == 0:
            raise ImageReadError(f"{name}: the file is empty (0 bytes); copy the photo again.")
        try:
            data = path.read_bytes()
        except OSError as err:
            raise ImageReadError(f"{name}: cannot be read ({err.strerror or err}); check its permissions.") from None
    else:
        data = bytes(source)
        if not data:
            raise ImageReadError("<bytes>: no data (0 bytes).")
    with warnings.catch_warnings():
        # our own check decides, not Pillow's MAX_IMAGE_PIXELS, which set per call by two threads could stay
        # at one call's value (the warnings filter is process-wide too, but a race there only shows or
        # hides Pillow's warning); Pillow still refuses past twice its limit, about 179 MP
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > max_pixels:
                raise Image.DecompressionBombError(f"{img.width}x{img.height}")
            img.load()
        except Image.DecompressionBombError:
            raise ImageReadError(
                f"{name}: more than {max_pixels:,} pixels, refused as a possible decompression bomb: resize the "
                "photo first.") from None
        except UnidentifiedImageError:
            raise ImageReadError(
                f"{name}: not an image file Pillow can read (JPEG, PNG, BMP, TIFF, WebP, GIF...).") from None
        except (OSError, SyntaxError, ValueError) as err:
            raise ImageReadError(f"{name}: the image is truncated or corrupt ({err}).") from None
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block should not lose the picture
        pass
    return _pil_to_rgb(img)


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        gray = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def _array_to_rgb(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ImageReadError(f"<array>: expected shape (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}.")
    arr = arr[..., :3]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    arr = arr.astype(np.float64)
    if arr.size and arr.max() <= 1.0:
        arr = arr * 255.0
    return np.clip(np.round(arr), 0, 255).astype(np.uint8)
