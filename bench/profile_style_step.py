"""Where the time of one style-transfer step goes, by TensorFlow op type, fp32 vs bf16.

Builds the FaceNet offline loss network's cost and its gradient (the work of one step) as a
TF1 graph and runs it with a full trace (``RunMetadata`` step stats); prints the step time and
the op types that take it. This is how the style-step benchmark's unmet goal for the offline
network was explained (see the README's benchmark section). Not part of ``python -m bench``.

    python -m bench.profile_style_step [--size 300x400]
"""
from __future__ import annotations

import argparse
import collections
import re
import time

import numpy as np

from bench import common  # noqa: F401  (sets up sys.path and TF's log level)


def build(graph_def, size, layers, a_C=None, a_S=None):
    """(graph, input placeholder, activations, J, dJ/dinput) for the FaceNet loss network."""
    import tensorflow as tf
    from happyhouse.style import facenet
    from happyhouse.style.images import MEANS
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (1, *size, 3))
        outs = tf.compat.v1.import_graph_def(
            graph_def, input_map={"input:0": (x + MEANS - 127.5) / 128.0},
            return_elements=[facenet.FACENET_LAYERS[n] for n in layers], name="")
        acts = dict(zip(layers, outs))
        if a_C is None:
            return g, x, acts, None, None
        content_scale, style_scale = facenet.FACENET_SCALES
        J_content = content_scale * tf.reduce_mean(tf.square(tf.constant(a_C) - acts["block35_3"])) / 4.0
        # the style cost as happyhouse.style.cost.StyleTransferCost computes it (style Grams once, G = A^T A)
        J_style = 0.0
        for name, coeff in facenet.FACENET_STYLE_LAYERS:
            v = a_S[name]
            G_S = tf.constant(v.reshape(-1, v.shape[-1]).T @ v.reshape(-1, v.shape[-1]))
            A = tf.reshape(acts[name], [-1, v.shape[-1]])
            n_HW, n_C = v.shape[1] * v.shape[2], v.shape[-1]
            G_G = tf.matmul(A, A, transpose_a=True)
            J_style += coeff * tf.reduce_sum(tf.square(G_S - G_G)) / (4.0 * n_C ** 2 * n_HW ** 2)
        J = 10 * J_content + 40 * style_scale * J_style
        return g, x, acts, J, tf.gradients(J, x)[0]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="300x400")
    args = p.parse_args(argv)
    import tensorflow as tf
    from tensorflow.core.protobuf import rewriter_config_pb2
    from happyhouse import data
    from happyhouse.style import facenet
    from happyhouse.style.images import normalize
    from happyhouse.style.start import NOISE_RATIO, noisy_image

    size = tuple(int(v) for v in args.size.split("x"))
    content = normalize("louvre_small.jpg", size)
    style = normalize("monet.jpg", size)
    start = noisy_image(content, NOISE_RATIO, seed=0)
    layers = tuple(facenet.FACENET_LAYERS)
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(data.facenet_graph_path().read_bytes())
    graph_def = facenet.subgraph(graph_def, [facenet.FACENET_LAYERS[n].split(":")[0] for n in layers], "facenet")
    g, x, acts, _, _ = build(graph_def, size, layers)
    with tf.compat.v1.Session(graph=g) as s:
        a_C = s.run(acts["block35_3"], {x: content})
        a_S = s.run({n: acts[n] for n, _ in facenet.FACENET_STYLE_LAYERS}, {x: style})
    g, x, _, J, grad = build(graph_def, size, layers, a_C, a_S)
    for precision in ("float32", "bfloat16"):
        config = tf.compat.v1.ConfigProto()
        if precision == "bfloat16":
            config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = \
                rewriter_config_pb2.RewriterConfig.ON
        with tf.compat.v1.Session(graph=g, config=config) as s:
            for _ in range(3):
                s.run([J, grad], {x: start})
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                s.run([J, grad], {x: start})
                times.append(time.perf_counter() - t0)
            meta = tf.compat.v1.RunMetadata()
            s.run([J, grad], {x: start}, run_metadata=meta,
                  options=tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE))
        by_op = collections.Counter()
        for device in meta.step_stats.dev_stats:
            for node in device.node_stats:
                match = re.match(r".* = (\S+?)\(", node.timeline_label)
                by_op[match.group(1) if match else node.node_name] += node.all_end_rel_micros
        total = sum(by_op.values())
        heavy = sum(v for k, v in by_op.items() if "Conv" in k or "MatMul" in k)
        print(f"{precision}: cost + gradient {np.median(times) * 1e3:.1f} ms (median of 5); op time "
              f"{total / 1e3:.1f} ms (ops overlap on 2 cores), of which convolutions + matmuls "
              f"{100 * heavy / total:.0f}%")
        for op, micros in by_op.most_common(10):
            print(f"    {op:36s} {micros / 1e3:7.1f} ms  {100 * micros / total:5.1f}%")


if __name__ == "__main__":
    main()
