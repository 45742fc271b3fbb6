"""The course's Inception FaceNet (OpenFace nn4.small2) rebuilt for Keras 3 (``inception_blocks_v2``).

:func:`faceRecoModel` takes channels-first images ``(m, 3, 96, 96)`` like the course, and
returns ``(m, 128)`` unit-norm encodings. Layer names match the course's weight files
(``conv1``, ``bn1``, ``inception_3a_1x1_conv``, ..., ``dense_layer``).

Keras 3 on CPU cannot run channels-first convolutions and pools, so the network
permutes its input to channels-last once and is built channels-last from there. Every
layer, padding and epsilon is the course's (``bn1`` keeps Keras' default epsilon 1e-3 as in
the course; the others use 1e-5), so with the same weights it computes what the course's
channels-first model computes; the weight loader (:mod:`happyhouse.face.weights`) transposes the
kernels to channels-last. Like the course's model, and unlike OpenFace's original,
this network has no LRN layers (they have no weights; the course omits them).
"""
from __future__ import annotations

import keras
from keras import layers

#: Channels-last throughout, whatever keras.config.image_data_format() says.
_CL = "channels_last"
_BN_EPSILON = 1e-5


def conv2d_bn(x, layer, cv1_out, cv1_filter=(1, 1), cv1_strides=(1, 1),
              cv2_out=None, cv2_filter=(3, 3), cv2_strides=(1, 1), padding=None):
    """The course's conv -> BN -> ReLU [-> zero-pad [-> conv -> BN -> ReLU]] helper.

    Layers are named ``<layer>_conv``/``_bn`` (one conv) or ``<layer>_conv1``/``_bn1``,
    ``_conv2``/``_bn2`` (two convs), as in the course's weight files.
    """
    num = "" if cv2_out is None else "1"
    x = layers.Conv2D(cv1_out, cv1_filter, strides=cv1_strides, data_format=_CL, name=f"{layer}_conv{num}")(x)
    x = layers.BatchNormalization(axis=-1, epsilon=_BN_EPSILON, name=f"{layer}_bn{num}")(x)
    x = layers.Activation("relu")(x)
    if padding is None:
        return x
    x = layers.ZeroPadding2D(padding=padding, data_format=_CL)(x)
    if cv2_out is None:
        return x
    x = layers.Conv2D(cv2_out, cv2_filter, strides=cv2_strides, data_format=_CL, name=f"{layer}_conv2")(x)
    x = layers.BatchNormalization(axis=-1, epsilon=_BN_EPSILON, name=f"{layer}_bn2")(x)
    return layers.Activation("relu")(x)


def _max_pool(x, size=3, strides=2):
    return layers.MaxPooling2D(pool_size=size, strides=strides, data_format=_CL)(x)


def _avg_pool(x, size=3, strides=3):
    return layers.AveragePooling2D(pool_size=size, strides=strides, data_format=_CL)(x)


def _pad(x, padding):
    return layers.ZeroPadding2D(padding=padding, data_format=_CL)(x)


def inception_block_1a(x):
    """Inception 3a: (m, 12, 12, 192) -> (m, 12, 12, 256)."""
    x_3x3 = conv2d_bn(x, "inception_3a_3x3", 96, cv2_out=128, cv2_filter=(3, 3), padding=(1, 1))
    x_5x5 = conv2d_bn(x, "inception_3a_5x5", 16, cv2_out=32, cv2_filter=(5, 5), padding=(2, 2))
    x_pool = conv2d_bn(_max_pool(x), "inception_3a_pool", 32, padding=((3, 4), (3, 4)))
    x_1x1 = conv2d_bn(x, "inception_3a_1x1", 64)
    return layers.concatenate([x_3x3, x_5x5, x_pool, x_1x1], axis=-1)


def inception_block_1b(x):
    """Inception 3b: (m, 12, 12, 256) -> (m, 12, 12, 320)."""
    x_3x3 = conv2d_bn(x, "inception_3b_3x3", 96, cv2_out=128, cv2_filter=(3, 3), padding=(1, 1))
    x_5x5 = conv2d_bn(x, "inception_3b_5x5", 32, cv2_out=64, cv2_filter=(5, 5), padding=(2, 2))
    x_pool = conv2d_bn(_avg_pool(x), "inception_3b_pool", 64, padding=(4, 4))
    x_1x1 = conv2d_bn(x, "inception_3b_1x1", 64)
    return layers.concatenate([x_3x3, x_5x5, x_pool, x_1x1], axis=-1)


def inception_block_1c(x):
    """Inception 3c: (m, 12, 12, 320) -> (m, 6, 6, 640)."""
    x_3x3 = conv2d_bn(x, "inception_3c_3x3", 128, cv2_out=256, cv2_filter=(3, 3), cv2_strides=(2, 2),
                      padding=(1, 1))
    x_5x5 = conv2d_bn(x, "inception_3c_5x5", 32, cv2_out=64, cv2_filter=(5, 5), cv2_strides=(2, 2),
                      padding=(2, 2))
    x_pool = _pad(_max_pool(x), ((0, 1), (0, 1)))
    return layers.concatenate([x_3x3, x_5x5, x_pool], axis=-1)


def inception_block_2a(x):
    """Inception 4a: (m, 6, 6, 640) -> (m, 6, 6, 640)."""
    x_3x3 = conv2d_bn(x, "inception_4a_3x3", 96, cv2_out=192, cv2_filter=(3, 3), padding=(1, 1))
    x_5x5 = conv2d_bn(x, "inception_4a_5x5", 32, cv2_out=64, cv2_filter=(5, 5), padding=(2, 2))
    x_pool = conv2d_bn(_avg_pool(x), "inception_4a_pool", 128, padding=(2, 2))
    x_1x1 = conv2d_bn(x, "inception_4a_1x1", 256)
    return layers.concatenate([x_3x3, x_5x5, x_pool, x_1x1], axis=-1)


def inception_block_2b(x):
    """Inception 4e: (m, 6, 6, 640) -> (m, 3, 3, 1024)."""
    x_3x3 = conv2d_bn(x, "inception_4e_3x3", 160, cv2_out=256, cv2_filter=(3, 3), cv2_strides=(2, 2),
                      padding=(1, 1))
    x_5x5 = conv2d_bn(x, "inception_4e_5x5", 64, cv2_out=128, cv2_filter=(5, 5), cv2_strides=(2, 2),
                      padding=(2, 2))
    x_pool = _pad(_max_pool(x), ((0, 1), (0, 1)))
    return layers.concatenate([x_3x3, x_5x5, x_pool], axis=-1)


def inception_block_3a(x):
    """Inception 5a: (m, 3, 3, 1024) -> (m, 3, 3, 736)."""
    x_3x3 = conv2d_bn(x, "inception_5a_3x3", 96, cv2_out=384, cv2_filter=(3, 3), padding=(1, 1))
    x_pool = conv2d_bn(_avg_pool(x), "inception_5a_pool", 96, padding=(1, 1))
    x_1x1 = conv2d_bn(x, "inception_5a_1x1", 256)
    return layers.concatenate([x_3x3, x_pool, x_1x1], axis=-1)


def inception_block_3b(x):
    """Inception 5b: (m, 3, 3, 736) -> (m, 3, 3, 736)."""
    x_3x3 = conv2d_bn(x, "inception_5b_3x3", 96, cv2_out=384, cv2_filter=(3, 3), padding=(1, 1))
    x_pool = _pad(conv2d_bn(_max_pool(x), "inception_5b_pool", 96), (1, 1))
    x_1x1 = conv2d_bn(x, "inception_5b_1x1", 256)
    return layers.concatenate([x_3x3, x_pool, x_1x1], axis=-1)


def faceRecoModel(input_shape=(3, 96, 96)):
    """The course's FaceNet model: (m, 3, 96, 96) float images in [0, 1] -> (m, 128) unit-norm encodings.

    3,743,280 parameters; load the course's weights with :func:`happyhouse.face.weights.set_weights`.
    """
    if tuple(input_shape) != (3, 96, 96):
        raise ValueError(f"faceRecoModel takes channels-first 96x96 RGB images, input_shape=(3, 96, 96); "
                         f"got {tuple(input_shape)}. Resize faces to 96x96 first (see Embedder.embed).")
    x_input = keras.Input(shape=tuple(input_shape), name="input")
    x = layers.Permute((2, 3, 1), name="to_channels_last")(x_input)

    # First block: conv1 7x7/2 + bn1 + ReLU, zero-pad + max pool
    x = _pad(x, (3, 3))
    x = layers.Conv2D(64, (7, 7), strides=(2, 2), data_format=_CL, name="conv1")(x)
    x = layers.BatchNormalization(axis=-1, epsilon=1e-3, name="bn1")(x)
    x = layers.Activation("relu")(x)
    x = _max_pool(_pad(x, (1, 1)))

    # Second block: conv2 1x1, conv3 3x3, zero-pad + max pool
    x = layers.Conv2D(64, (1, 1), data_format=_CL, name="conv2")(x)
    x = layers.BatchNormalization(axis=-1, epsilon=_BN_EPSILON, name="bn2")(x)
    x = layers.Activation("relu")(x)
    x = _pad(x, (1, 1))
    x = layers.Conv2D(192, (3, 3), data_format=_CL, name="conv3")(x)
    x = layers.BatchNormalization(axis=-1, epsilon=_BN_EPSILON, name="bn3")(x)
    x = layers.Activation("relu")(x)
    x = _max_pool(_pad(x, (1, 1)))

    # Inception 3a/3b/3c, 4a/4e, 5a/5b
    for block in (inception_block_1a, inception_block_1b, inception_block_1c,
                  inception_block_2a, inception_block_2b,
                  inception_block_3a, inception_block_3b):
        x = block(x)

    # Top: average pool, dense 128, L2 normalisation
    x = layers.AveragePooling2D(pool_size=(3, 3), strides=(1, 1), data_format=_CL)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, name="dense_layer")(x)
    x = layers.UnitNormalization(axis=1, name="l2_normalize")(x)
    return keras.Model(inputs=x_input, outputs=x, name="FaceRecoModel")
