"""The course's Inception FaceNet (OpenFace nn4.small2) for Keras 3: ``faceRecoModel`` and its blocks.

:func:`faceRecoModel` takes channels-first images ``(m, 3, 96, 96)`` like the course and returns
``(m, 128)`` unit-norm encodings (3,743,280 parameters); its layer names match the course's weight
files. The network is defined in :mod:`happyhouse.face.network`, where the door's embedder builds it
too; load the course's weights with ``fr_utils.load_weights_from_FaceNet``.
"""
from happyhouse.face.network import (  # noqa: F401 (the course's names)
    conv2d_bn,
    faceRecoModel,
    inception_block_1a,
    inception_block_1b,
    inception_block_1c,
    inception_block_2a,
    inception_block_2b,
    inception_block_3a,
    inception_block_3b,
)
