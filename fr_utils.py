"""The course's helpers for the Happy House face recognition notebook.

Import this module first: it loads TensorFlow quietly (no start-up log lines under the cell).

* ``WEIGHTS``, ``conv_shape``: the course's layers with weights and their kernel shapes;
* :func:`load_weights_from_FaceNet`: the course's weight CSVs into ``faceRecoModel``'s layers;
* :func:`img_to_encoding`: an image -> its (1, dim) encoding by the model (128 for the course's
  FaceNet, 512 for the offline embedder);
* :func:`load_embedder`: a ready embedder, ``"inception-resnet-v1"`` (offline, 512-d) or the course's
  ``"nn4.small2"``; :func:`read_image`: a course image as (H, W, 3) uint8 RGB.

Files are found through the data lookup (explicit argument, ``$COURSE_DATA``, project folders).
The engines live in :mod:`happyhouse.face`. ``python -m fr_utils COMMAND`` runs the door's
command line (``fetch``, ``enroll``, ``verify``, ``identify``, ...).
"""
from __future__ import annotations

import os
import sys

import numpy as np

from happyhouse import data, runtime
from happyhouse.errors import DataNotFoundError, WeightsError  # noqa: F401 (the notebook catches them)
from happyhouse.face.embedders import EMBEDDER_NAMES, Embedder, course_embedder, load_embedder  # noqa: F401
from happyhouse.face.weights import WEIGHTS, conv_shape, load_weights, set_weights, weight_files  # noqa: F401
from happyhouse.image_io import read_rgb

if __name__ != "__main__":  # imported (the notebook): before its `import tensorflow`, so no log lines show;
    runtime.import_tensorflow()  # run as the door's command line, TensorFlow loads only when a command needs it


def load_weights_from_FaceNet(model, weights_dir=None, cache_dir=None):
    """Load the course's weights into ``model`` (from :func:`inception_blocks_v2.faceRecoModel`).

    Every file and every layer shape is checked before any weight is set, so a failure
    (:class:`WeightsError`) leaves the model untouched. Returns the model.
    """
    return set_weights(model, load_weights(weights_dir, cache_dir))


def read_image(name) -> np.ndarray:
    """A course image (``"camera_0.jpg"``, ``"images/camera_0.jpg"`` or a path) -> (H, W, 3) uint8 RGB.

    Raises DataNotFoundError naming where it looked, or ImageReadError naming the file and the reason.
    """
    return read_rgb(data.find_file("images", name))


def img_to_encoding(image, model) -> np.ndarray:
    """An image (path, or (H, W, 3) RGB array) -> its (1, dim) encoding by ``model``.

    ``model`` is the course's Keras FRmodel or an :class:`Embedder`. A path is looked up
    through the data lookup (``images/camera_0.jpg`` resolves into ``$COURSE_DATA/images``).
    The image is used whole, as the course's 96x96 face crops are: grey, RGBA or 16-bit pictures
    become RGB and any size is resized to the model's input (a face must fill the picture; the
    door's ``identify`` finds faces in ordinary photos).
    """
    if isinstance(image, (str, os.PathLike)):
        image = data.find_file("images", image)
    return course_embedder(model).embed(read_rgb(image)[None])


if __name__ == "__main__":
    # ``python -m fr_utils fetch ...`` (course data) or a door command (enroll, verify, identify, ...).
    from happyhouse.door.cli import main

    sys.exit(main())
