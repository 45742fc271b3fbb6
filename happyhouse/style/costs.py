"""Costs added to the course's: blended style targets (several styles) and total variation."""
from __future__ import annotations

import math

import tensorflow as tf


def normalise_weights(weights, n_styles: int) -> list[float]:
    """Style weights -> weights summing to 1, one per style (None: equal weights). Raises
    ValueError when the count does not match ``n_styles``, a weight is negative or all are 0."""
    if weights is None:
        return [1.0 / n_styles] * n_styles
    weights = [float(w) for w in weights]
    if len(weights) != n_styles:
        raise ValueError(f"got {len(weights)} style weight(s) for {n_styles} style image(s); "
                         "give one weight per style image (--style-weights w1 w2 ...)")
    bad = [w for w in weights if w < 0 or not math.isfinite(w)]
    if bad:
        raise ValueError(f"style weights must be finite and >= 0, got {bad[0]:g}")
    total = sum(weights)
    if total <= 0:
        raise ValueError("style weights are all 0; at least one must be positive")
    return [w / total for w in weights]


def blend_grams(grams: list[dict], weights) -> dict:
    """Mix several styles' Gram matrices layer by layer: ``grams`` [{layer: (n_C, n_C)}] one dict
    per style, ``weights`` (normalised, one per style) -> {layer: sum_k w_k G_k}."""
    if len(grams) == 1:
        return dict(grams[0])
    return {name: tf.add_n([w * g[name] for w, g in zip(weights, grams)]) for name in grams[0]}


def total_variation(image):
    """Total variation of a (1, H, W, 3) image: the mean over pixels of the squared
    differences to the right and lower neighbours (summed over channels). A scalar tensor;
    about 2 * 3 * 400 = 2400 for the course's noisy start, well under 100 for a smooth photo."""
    image = tf.convert_to_tensor(image)
    dx = image[:, :, 1:, :] - image[:, :, :-1, :]
    dy = image[:, 1:, :, :] - image[:, :-1, :, :]
    return (tf.reduce_sum(tf.reduce_mean(tf.square(dx), axis=[0, 1, 2]))
            + tf.reduce_sum(tf.reduce_mean(tf.square(dy), axis=[0, 1, 2])))
