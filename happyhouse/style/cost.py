"""The cost of a generated image, in this engine's own form: :class:`StyleTransferCost` (content
and style costs of the course's definition, the style images' Gram matrices computed once, each
Gram as A^T A of the (n_H*n_W, n_C) activation), with blended style targets (several styles) and
total variation added."""
from __future__ import annotations

import math

from happyhouse.runtime import import_tensorflow

tf = import_tensorflow()


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
    if not math.isfinite(total):
        raise ValueError(f"style weights too large to add up ({', '.join(f'{w:g}' for w in weights)}); "
                         "they are relative: give smaller numbers in the same ratio")
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


class StyleTransferCost:
    """The cost of a generated image: ``cost(generated) -> (J, J_content, J_style)`` scalars.

    ``content_image``, ``style_image``: (1, H, W, 3) normalised; their activations are computed
    once. ``style_image`` may be a list of style images: their Gram matrices are mixed by
    ``style_weights`` (normalised; default equal), see :func:`blend_grams`. A style image of
    another size than the generated one has its Grams rescaled by the ratio of positions.
    ``tv_weight`` > 0 adds ``tv_weight`` * :func:`total_variation` of the generated image to J.
    Layers default to the network's own (VGG-19: conv4_2, and conv1_1 ... conv5_1 at 0.2);
    each network's ``content_scale`` / ``style_scale`` put its costs into VGG-19's units.
    J = alpha J_content + beta J_style, with Gatys et al.'s normalisations:
    J_content = mean((a_C - a_G)^2) / 4 and, per style layer,
    sum((G_S - G_G)^2) / (4 n_C^2 (n_H n_W)^2) with G = A^T A, A the (n_H*n_W, n_C) activation.
    """

    def __init__(self, model, content_image, style_image, alpha=10, beta=40,
                 content_layer=None, style_layers=None, style_weights=None, tv_weight=0.0):
        self.model, self.alpha, self.beta = model, alpha, beta
        self.content_layer = content_layer or model.content_layer
        self.style_layers = style_layers or model.style_layers
        style_images = list(style_image) if isinstance(style_image, (list, tuple)) else [style_image]
        self.style_weights = normalise_weights(style_weights, len(style_images))
        if not tv_weight >= 0:
            raise ValueError(f"tv weight must be >= 0, got {tv_weight:g}")
        self.tv_weight = float(tv_weight)
        names = [n for n, _ in self.style_layers]
        self.a_C = model.activations(content_image, [self.content_layer])[self.content_layer]
        self.a_S = model.activations(style_images[0], names)  # the first style's, as the course
        self._layers = [self.content_layer] + names
        self._positions = {n: self._n_positions(self.a_S[n]) for n in names}
        grams = [{n: self._gram(self.a_S[n]) for n in names}]
        for image in style_images[1:]:
            a_S = model.activations(image, names)
            grams.append({n: self._gram(a_S[n]) * (self._positions[n] / self._n_positions(a_S[n])) for n in names})
        self._G_S = blend_grams(grams, self.style_weights)

    @staticmethod
    def _n_positions(a):
        _, n_H, n_W, _ = a.get_shape().as_list()
        return n_H * n_W

    @staticmethod
    def _gram(a):
        """Gram matrix (n_C, n_C) of an activation (1, n_H, n_W, n_C): A^T A, A (n_H*n_W, n_C)."""
        A = tf.reshape(a, [-1, tf.shape(a)[-1]])
        return tf.matmul(A, A, transpose_a=True)

    def style_cost(self, a_G: dict):
        """The weighted style cost of the generated image's activations ``a_G`` {layer: (1, n_H, n_W, n_C)}
        against the style Grams computed once."""
        J_style = 0.0
        for name, coeff in self.style_layers:
            _, n_H, n_W, n_C = a_G[name].get_shape().as_list()
            G_S = self._G_S[name]
            if self._positions[name] != n_H * n_W:  # a style image of another size (--style-scale)
                G_S = G_S * (n_H * n_W / self._positions[name])
            G_G = self._gram(a_G[name])
            J_style += coeff * tf.reduce_sum(tf.square(G_S - G_G)) / (4.0 * n_C ** 2 * (n_H * n_W) ** 2)
        return J_style

    def __call__(self, generated):
        a_G = self.model.activations(generated, self._layers)
        J_content = self.model.content_scale * tf.reduce_mean(tf.square(self.a_C - a_G[self.content_layer])) / 4.0
        J_style = self.model.style_scale * self.style_cost(a_G)
        J = self.alpha * J_content + self.beta * J_style
        if self.tv_weight:
            J = J + self.tv_weight * total_variation(generated)
        return J, J_content, J_style
