"""Weight loading: the course's way vs our first load (CSV -> cache) vs our cached load.

The script writes a complete folder of the course's 224 CSVs (226 in the export, two unused) with the real shapes
(``weights.weight_files()``; random values, written as the course's files are: one line,
comma-separated, 14 significant digits) into a temporary folder, then times

* the course's way: ``np.genfromtxt`` per CSV (its ``load_weights``) then ``set_weights`` per
  layer (its ``load_weights_from_FaceNet``), reproduced below;
* ours, first load: ``fr_utils.load_weights_from_FaceNet(model, folder, cache_dir=<empty temp>)``, i.e.
  ``happyhouse.face.weights.set_weights(model, load_weights(folder, cache_dir=...))``
  (parses every CSV, checks them all, writes the cache);
* ours, cached load: the same call again (reads only the cache).

and checks that both ways put identical weights into the model. The course's own folder is
used too where it is complete (ours has 221 of 226 files, so it is reported and skipped).

    python -m bench.weights_load [--quick]
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import common


def write_csv_folder(folder: Path, shapes: dict, rng) -> int:
    """Random values of the right shapes in the course's CSV format; returns the bytes written."""
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for name, shape in shapes.items():
        values = (rng.standard_normal(int(np.prod(shape))) * 0.1).tolist()
        text = ("%.14g," * len(values) % tuple(values))[:-1]
        (folder / name).write_text(text)
        total += len(text)
    return total


def course_load_weights(dir_path: Path, layers: list[str], conv_shape: dict) -> dict:
    """The course's ``load_weights()``: genfromtxt per CSV, reshape and transpose as it does."""
    from numpy import genfromtxt
    file_names = filter(lambda f: not f.startswith('.'), os.listdir(dir_path))
    paths = {}
    weights_dict = {}
    for n in file_names:
        paths[n.replace('.csv', '')] = str(dir_path) + '/' + n
    for name in layers:
        if 'conv' in name:
            conv_w = genfromtxt(paths[name + '_w'], delimiter=',', dtype=None)
            conv_w = np.reshape(conv_w, conv_shape[name])
            conv_w = np.transpose(conv_w, (2, 3, 1, 0))
            conv_b = genfromtxt(paths[name + '_b'], delimiter=',', dtype=None)
            weights_dict[name] = [conv_w, conv_b]
        elif 'bn' in name:
            bn_w = genfromtxt(paths[name + '_w'], delimiter=',', dtype=None)
            bn_b = genfromtxt(paths[name + '_b'], delimiter=',', dtype=None)
            bn_m = genfromtxt(paths[name + '_m'], delimiter=',', dtype=None)
            bn_v = genfromtxt(paths[name + '_v'], delimiter=',', dtype=None)
            weights_dict[name] = [bn_w, bn_b, bn_m, bn_v]
        elif 'dense' in name:
            dense_w = genfromtxt(str(dir_path) + '/dense_w.csv', delimiter=',', dtype=None)
            dense_w = np.reshape(dense_w, (128, 736))
            dense_w = np.transpose(dense_w, (1, 0))
            dense_b = genfromtxt(str(dir_path) + '/dense_b.csv', delimiter=',', dtype=None)
            weights_dict[name] = [dense_w, dense_b]
    return weights_dict


def course_load_weights_from_FaceNet(FRmodel, dir_path: Path, layers: list[str], conv_shape: dict) -> None:
    """The course's ``load_weights_from_FaceNet``: load every CSV, then set each layer."""
    weights_dict = course_load_weights(dir_path, layers, conv_shape)
    for name in layers:
        FRmodel.get_layer(name).set_weights(weights_dict[name])


def model_weights(model, layers) -> list[np.ndarray]:
    return [w for name in layers for w in model.get_layer(name).get_weights()]


def main(argv=None) -> dict:
    args = common.parser(__doc__.splitlines()[0]).parse_args(argv)
    roof = common.rooflines(args.quick)
    from happyhouse.face import weights

    shapes = weights.weight_files()
    # the course's way (in --quick mode only its first layers, which checks the code path)
    layers = weights.WEIGHTS[:6] if args.quick else weights.WEIGHTS
    notes = []
    with tempfile.TemporaryDirectory(prefix="bench-weights-") as tmp:
        folder = Path(tmp) / "weights"
        t0 = time.perf_counter()
        nbytes = write_csv_folder(folder, shapes, np.random.default_rng(0))
        notes.append(f"synthetic folder: {len(shapes)} CSVs, {nbytes / 2**20:.1f} MiB, written in "
                     f"{time.perf_counter() - t0:.1f} s")
        course_s, course_weights = time_course_way(folder, layers)
        ours = time_our_way(folder, Path(tmp) / "cache", 3 if args.quick else 7)
        n_course = len(course_weights)
        max_diff = max(float(np.abs(a - b).max()) for a, b in zip(course_weights, ours["weights"][:n_course]))
        sizes = {p.name: p.stat().st_size for p in folder.iterdir()}
        t0 = time.perf_counter()   # where the time of a cached load goes: the checksum of the CSVs
        weights.checksum(folder, sorted(shapes))
        checksum_s = time.perf_counter() - t0

    # --quick times the course's way on its first layers only: scale by the bytes it parsed
    parsed = [f for layer in layers for f in weights.layer_files(layer)] if list(layers) != list(weights.WEIGHTS) else []
    scale = (sum(sizes.values()) / sum(sizes[f] for f in parsed)) if parsed else 1.0
    course_full_s = course_s * scale
    rows = [
        {"way": "course: genfromtxt per CSV + set_weights" + (" (extrapolated)" if scale != 1 else ""),
         "seconds": course_full_s, "speedup_vs_course": 1.0},
        {"way": "ours, first load (CSV -> check -> cache)", "seconds": ours["first_s"],
         "speedup_vs_course": course_full_s / ours["first_s"]},
        {"way": "ours, cached load (median)", "seconds": ours["cached_s"],
         "speedup_vs_course": course_full_s / ours["cached_s"]},
    ]
    notes += [f"cache: {ours['cache_files']} file(s), {ours['cache_mib']:.1f} MiB; cached-load repeats (s): "
              + ", ".join(f"{t:.3f}" for t in ours["cached"]),
              f"of a cached load, {checksum_s:.3f} s is the sha256 of the CSVs (the cache key: a changed "
              f"CSV is never served stale)",
              f"largest difference between the course's and our loaded weights: {max_diff:g}",
              course_folder_note(shapes)]
    speedup = course_full_s / ours["cached_s"]
    goals = [common.goal("cached load vs the course's way", ">= 200x", round(speedup, 1), speedup >= 200),
             common.goal("same weights as the course's way", "identical", max_diff, max_diff == 0.0)]
    common.write("weights_load", rows, goals, roof, args.out, notes,
                 extra={"course_layers_timed": len(layers), "course_extrapolated": scale != 1})
    return {"rows": rows, "goals": goals}


def time_course_way(folder: Path, layers) -> tuple[float, list]:
    """(seconds, the loaded weights of ``layers``) of the course's loader on ``folder``."""
    from happyhouse.face import weights
    from happyhouse.face.network import faceRecoModel
    model = faceRecoModel(input_shape=(3, 96, 96))
    t0 = time.perf_counter()
    course_load_weights_from_FaceNet(model, folder, layers, weights.conv_shape)
    return time.perf_counter() - t0, model_weights(model, layers)


def time_our_way(folder: Path, cache: Path, repeats: int) -> dict:
    """Our loader on ``folder``: the first load into the empty ``cache``, then ``repeats`` cached
    ones. Returns first_s, cached (each repeat's seconds), cached_s (their median), cache_files,
    cache_mib and weights (every layer's, after the loads)."""
    from happyhouse.face import weights
    from happyhouse.face.network import faceRecoModel
    model = faceRecoModel(input_shape=(3, 96, 96))
    t0 = time.perf_counter()
    weights.set_weights(model, weights.load_weights(folder, cache_dir=cache))
    first_s = time.perf_counter() - t0
    cache_files = list(cache.glob("*"))
    cached = common.timeit(lambda: weights.set_weights(model, weights.load_weights(folder, cache_dir=cache)),
                           repeats=repeats, warmup=1)
    return {"first_s": first_s, "cached": cached, "cached_s": float(np.median(cached)),
            "cache_files": len(cache_files), "cache_mib": sum(p.stat().st_size for p in cache_files) / 2**20,
            "weights": model_weights(model, weights.WEIGHTS)}


def course_folder_note(shapes) -> str:
    """How many of the course's weight CSVs the data lookup finds here."""
    from happyhouse import data
    try:
        real = data.find_folder("weights")
    except data.DataNotFoundError as err:  # no course data here: the synthetic folder is all we need
        return f"course folder not found ({type(err).__name__}); synthetic folder only"
    have = sum((real / n).is_file() for n in shapes)
    return (f"course folder {real}: {have} of {len(shapes)} CSVs"
            + ("" if have == len(shapes) else " (incomplete: timed on the synthetic folder only)"))


if __name__ == "__main__":
    main()
