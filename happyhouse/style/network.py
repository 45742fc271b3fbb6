"""The loss network as the course reads it: :class:`LossNetwork`, a dict-like fixed network
(``model["input"].assign(image)`` then ``model["conv4_2"]``), and the Keras VGG builder with the
paper's layer names (conv1_1 ... conv5_4, avgpool1 ... avgpool5).

Inputs are always the course's normalised images (RGB minus ``images.MEANS``), (1, H, W, 3) float32.
"""
from __future__ import annotations

from happyhouse.runtime import import_tensorflow

tf = import_tensorflow()

#: VGG-19's convolution blocks (paper, configuration E): (block, number of convs, filters).
VGG19_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))


def vgg_layer_names(blocks) -> tuple:
    """("input", conv1_1, ..., avgpool1, conv2_1, ...) for VGG ``blocks`` (block, convs, filters)."""
    return ("input",) + tuple(name for b, n, _ in blocks
                              for name in [f"conv{b}_{i}" for i in range(1, n + 1)] + [f"avgpool{b}"])


VGG19_CONVS = tuple(f"conv{b}_{i}" for b, n, _ in VGG19_BLOCKS for i in range(1, n + 1))
VGG19_LAYERS = vgg_layer_names(VGG19_BLOCKS)
#: The course's style layers, 0.2 each, and its content layer (VGG-16 has them too).
VGG_STYLE_LAYERS = [(f"conv{b}_1", 0.2) for b in range(1, 6)]
VGG_CONTENT_LAYER = "conv4_2"


class LossNetwork:
    """A fixed image network read by layer name, as the course's ``model`` dict.

    ``model["input"]`` is a tf.Variable (1, H, W, 3); ``model[name]`` is the activation of
    layer ``name`` for the current input, shape (1, n_H, n_W, n_C).
    ``content_scale`` and ``style_scale`` put this network's costs into VGG-19's units so that
    one alpha/beta balances every network alike (1.0 for VGG-19's real weights).
    """

    def __init__(self, name, features, layer_names, content_layer, style_layers, description,
                 height, width, content_scale=1.0, style_scale=1.0, min_size=1):
        self.name = name
        self.min_size = min_size
        self.description = description
        self.layer_names = tuple(layer_names)
        self.content_layer = content_layer
        self.style_layers = list(style_layers)
        self.content_scale = float(content_scale)
        self.style_scale = float(style_scale)
        self._features = features  # callable (images, tuple of names) -> dict name -> tensor
        self.input = None
        self.set_input_size(height, width)

    def set_input_size(self, height: int, width: int) -> None:
        """(Re)create ``model["input"]`` as zeros of shape (1, height, width, 3)."""
        if min(height, width) < self.min_size:
            raise ValueError(f"the {self.name} loss network needs images of at least {self.min_size} pixels "
                             f"a side, got {height}x{width}; use a larger --size or another network.")
        if self.input is None or tuple(self.input.shape) != (1, height, width, 3):
            self.input = tf.Variable(tf.zeros((1, height, width, 3)), name="input")

    def activations(self, images, layers=None) -> dict:
        """Activations of ``layers`` (default: all) for ``images`` (1, H, W, 3) normalised RGB."""
        layers = tuple(layers) if layers is not None else self.layer_names[1:]
        unknown = [n for n in layers if n not in self.layer_names]
        if unknown:
            vgg19_only = [n for n in unknown if n in VGG19_LAYERS]
            note = f" ({', '.join(vgg19_only)}: VGG-19 only)" if vgg19_only else ""
            raise KeyError(f"the {self.name} loss network has no layer {', '.join(unknown)}{note}; "
                           f"its layers: {', '.join(self.layer_names)}")
        return self._features(tf.convert_to_tensor(images, tf.float32), layers)

    def shapes(self) -> dict:
        """Layer name -> activation shape for the current input size."""
        acts = self.activations(self.input)
        return {"input": tuple(self.input.shape), **{n: tuple(a.shape) for n, a in acts.items()}}

    def __getitem__(self, name):
        if name == "input":
            return self.input
        return self.activations(self.input, [name])[name]

    def __contains__(self, name):
        return name in self.layer_names

    def __iter__(self):
        return iter(self.layer_names)

    def __len__(self):
        return len(self.layer_names)

    def keys(self):
        return list(self.layer_names)

    def __repr__(self):
        return f"<LossNetwork {self.name}: {len(self)} layers, input {tuple(self.input.shape)}>"


def build_vgg(seed: int | None = 0, kernel_initializer=None, blocks=VGG19_BLOCKS, pooling="avg",
              name="vgg19_avgpool"):
    """VGG's convolutions with average pooling, as the course; a Keras model
    (None, H, W, 3) -> dict of the course's layer names. Weights are He-normal random
    (``seed``), or ``kernel_initializer`` (e.g. "zeros" when a file fills them next).
    ``blocks`` (block, convs, filters) gives the VGG (default VGG-19); ``pooling``
    "max" gives the classifier's own pooling (layers still named avgpool*; for checks)."""
    import keras
    init = kernel_initializer or keras.initializers.HeNormal(seed=seed)
    pool = {"avg": keras.layers.AveragePooling2D, "max": keras.layers.MaxPooling2D}[pooling]
    x = inputs = keras.Input(shape=(None, None, 3), name="input")
    outputs = {}
    for block, n_convs, filters in blocks:
        for i in range(1, n_convs + 1):
            layer = f"conv{block}_{i}"
            x = outputs[layer] = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                                     kernel_initializer=init, name=layer)(x)
        x = outputs[f"avgpool{block}"] = pool(2, strides=2, padding="same", name=f"avgpool{block}")(x)
    return keras.Model(inputs, outputs, name=name)


def keras_features(keras_model):
    """Feature extraction for a LossNetwork: (images, layer names) -> {name: activation}, one
    Keras sub-model per set of layers (so a step computes only the layers its cost reads)."""
    cache = {}

    def features(images, layers):
        if layers not in cache:
            import keras
            cache[layers] = keras.Model(keras_model.input,
                                        {n: keras_model.get_layer(n).output for n in layers})
        return cache[layers](images)
    return features
