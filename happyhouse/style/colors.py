"""Keeping the content's colours (Gatys et al. 2017, "Controlling perceptual factors in neural
style transfer"): YCbCr conversion, luminance transfer, colour histogram matching, and the
metric, the mean chroma gap to the content.

All pictures here are (H, W, 3) uint8 RGB.
"""
from __future__ import annotations

import numpy as np

#: How --preserve-colors keeps the content's colours (the first is the default).
METHODS = ("luminance", "histogram")

# ITU-R BT.601 full range, as JPEG: Y in [0, 255], Cb and Cr centred on 128.
_RGB_TO_YCBCR = np.array([[0.299, 0.587, 0.114],
                          [-0.168736, -0.331264, 0.5],
                          [0.5, -0.418688, -0.081312]])
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR)
_OFFSET = np.array([0.0, 128.0, 128.0])


def rgb_to_ycbcr(rgb) -> np.ndarray:
    """(H, W, 3) RGB in [0, 255] -> (H, W, 3) float64 YCbCr (Y, Cb, Cr; chroma centred on 128)."""
    return np.asarray(rgb, dtype=np.float64) @ _RGB_TO_YCBCR.T + _OFFSET


def ycbcr_to_rgb(ycbcr) -> np.ndarray:
    """(H, W, 3) YCbCr -> (H, W, 3) uint8 RGB (rounded, clipped)."""
    rgb = (np.asarray(ycbcr, dtype=np.float64) - _OFFSET) @ _YCBCR_TO_RGB.T
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def luminance_transfer(generated, content) -> np.ndarray:
    """The generated picture's luminance with the content's chroma: (H, W, 3) uint8 each, same
    size; returns (H, W, 3) uint8. The style's brush strokes stay, its palette goes."""
    _check_same_size(generated, content)
    ycbcr = rgb_to_ycbcr(generated)
    ycbcr[..., 1:] = rgb_to_ycbcr(content)[..., 1:]
    return ycbcr_to_rgb(ycbcr)


def match_color_histogram(style, content, eps=1e-5) -> np.ndarray:
    """``style`` (H, W, 3) uint8 recoloured so that its colours have the mean and covariance of
    ``content``'s (any size): x' = A (x - mu_s) + mu_c with A = Sigma_c^1/2 Sigma_s^-1/2
    (Gatys et al. 2017, section 5.1). Returns (H, W, 3) uint8, the style's size."""
    s = np.asarray(style, dtype=np.float64).reshape(-1, 3)
    c = np.asarray(content, dtype=np.float64).reshape(-1, 3)
    mu_s, mu_c = s.mean(0), c.mean(0)
    cov_s = np.cov(s, rowvar=False) + eps * np.eye(3)
    cov_c = np.cov(c, rowvar=False) + eps * np.eye(3)
    A = _sqrtm(cov_c) @ np.linalg.inv(_sqrtm(cov_s))
    matched = (s - mu_s) @ A.T + mu_c
    return np.clip(np.round(matched), 0, 255).astype(np.uint8).reshape(np.shape(style))


def chroma_gap(picture, content) -> float:
    """Mean absolute difference of the chroma channels (Cb, Cr) between two (H, W, 3) pictures
    of one size: 0 when ``picture`` has exactly the content's colours."""
    _check_same_size(picture, content)
    return float(np.abs(rgb_to_ycbcr(picture)[..., 1:] - rgb_to_ycbcr(content)[..., 1:]).mean())


def _sqrtm(matrix):
    """Square root of a symmetric positive definite 3x3 matrix."""
    values, vectors = np.linalg.eigh(matrix)
    return vectors @ np.diag(np.sqrt(np.clip(values, 0, None))) @ vectors.T


def _check_same_size(a, b):
    if np.shape(a) != np.shape(b):
        raise ValueError(f"pictures must have one shape, got {np.shape(a)} and {np.shape(b)}")
