"""Neural style transfer's engines: the loss networks (``network``, ``vgg19``, ``vgg16``,
``facenet``, chosen by name in ``networks``), the cost (``cost``), the optimisers (``optimize``),
the driver (``transfer``) and its controls (``colors``, ``start``, ``sizes``, ``checkpoint``,
``contact_sheet``), pictures in and out (``images``), the ``nst`` command (``cli``) and the
loss-network comparison (``compare``)."""
