"""The starting image of the optimisation: the content, the course's noisy content, or noise."""
from __future__ import annotations

import numpy as np

#: --init choices: "noise" is the course's (content with NOISE_RATIO of uniform noise).
INIT_MODES = ("content", "noise", "random")
#: How each start reads in a printed plan.
INIT_WORDS = {"content": "the content", "noise": "the course's noisy content", "random": "noise"}
NOISE_RANGE = 20.0  # the course's uniform noise in [-20, 20] (normalised pixel units)
NOISE_RATIO = 0.6  # the course's share of noise in the start


def check_noise_ratio(noise_ratio: float) -> None:
    """ValueError unless ``noise_ratio`` is between 0 and 1."""
    if not 0 <= noise_ratio <= 1:
        raise ValueError(f"noise ratio must be between 0 and 1, got {noise_ratio:g}")


def noisy_image(content_image, noise_ratio: float, seed=None) -> np.ndarray:
    """``content_image`` (1, H, W, 3) mixed with ``noise_ratio`` of uniform noise in [-20, 20]
    (the course's generate_noise_image; ``seed`` None draws from numpy's global generator).
    Same shape, float32."""
    check_noise_ratio(noise_ratio)
    rng = np.random if seed is None else np.random.default_rng(seed)
    noise = rng.uniform(-NOISE_RANGE, NOISE_RANGE, np.shape(content_image)).astype(np.float32)
    return (noise * noise_ratio + np.asarray(content_image) * (1 - noise_ratio)).astype(np.float32)


def initial_image(content_image, mode="noise", noise_ratio=0.6, seed=None) -> np.ndarray:
    """The start (1, H, W, 3) float32 for ``mode``: "content" (the content itself), "noise"
    (content with ``noise_ratio`` of noise, the course's 0.6) or "random" (noise only)."""
    if mode not in INIT_MODES:
        raise ValueError(f"init must be one of {', '.join(INIT_MODES)}, got {mode!r}")
    if mode == "content":
        return np.array(content_image, dtype=np.float32)
    return noisy_image(content_image, 1.0 if mode == "random" else noise_ratio, seed)
