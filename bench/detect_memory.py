"""Memory of face detection over many frames: MTCNN's R-Net and O-Net batches padded to a few
sizes (happyhouse.door.detect.PAD_BATCHES_FROM, the default), and with the C heap's free memory
handed back every 50 frames as the watcher does (runtime.trim_heap), against neither (the naive way).

    python -m bench.detect_memory [--frames 1600] [--quick]

Frames: 40 crops of $FACES_DATA/groups/multiface.jpg (six faces) at random places and scales,
resized to 640x480 and shifted a little each time round, so the number of candidate faces MTCNN
passes to R-Net and O-Net changes from frame to frame (a crowd at the door, a busy street). Each
way runs in a fresh process: ``detect_faces`` on every frame, resident memory (psutil) 16 times
(every 100 frames of 1,600), the slope after a warm-up of a quarter of the frames, and ms per frame; the faces found
are compared between the two ways.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

from bench import common
from bench.watch import FLAT_MIB_PER_1000
from bench.watch_memory import rss_mib, rss_slope

#: way -> (PAD_BATCHES_FROM: 0 none, None the default; heap trimmed every this many frames, 0 never)
WAYS = {"unpadded, heap kept (naive)": (0, 0), "padded": (None, 0),
        "padded, heap trimmed every 50 frames (door watch)": (None, 50)}


def crowd_frames(count: int = 40, seed: int = 0) -> list[np.ndarray]:
    """``count`` (480, 640, 3) uint8 crops of the group photo at random places and scales."""
    import cv2

    from happyhouse import data
    from happyhouse.image_io import read_rgb
    group = read_rgb(data.find_folder("faces") / "groups" / "multiface.jpg")
    rng, frames = np.random.default_rng(seed), []
    h, w = group.shape[:2]
    for _ in range(count):
        s = rng.uniform(0.3, 1.0)
        ch, cw = int(h * s), int(w * s)
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        frames.append(cv2.resize(group[y:y + ch, x:x + cw], (640, 480)))
    return frames


def child(frames_total: int, pad_from, trim_every: int, warmup: int) -> dict:
    """In this process: detect on ``frames_total`` frames; 16 RSS samples (seconds, frames, MiB), the seconds the first ``warmup`` frames took, ms per frame, the faces found."""
    from happyhouse import runtime
    from happyhouse.door import detect
    if pad_from is not None:
        detect.PAD_BATCHES_FROM = pad_from
    frames, samples, found, warmup_s, every = crowd_frames(), [], [], 0.0, max(1, frames_total // 16)
    start = time.perf_counter()
    for i in range(frames_total):
        frame = frames[i % len(frames)]
        faces = detect.detect_faces(np.ascontiguousarray(np.roll(frame, (i // len(frames)) % 97, axis=1)))
        if trim_every and (i + 1) % trim_every == 0:
            runtime.trim_heap()
        if i < len(frames):
            found.append([list(f.box) for f in faces])
        if i == warmup:
            warmup_s = time.perf_counter() - start
        if i % every == 0:
            samples.append((time.perf_counter() - start, i, rss_mib()))
    seconds = time.perf_counter() - start
    samples.append((seconds, frames_total, rss_mib()))
    return {"samples": samples, "warmup_s": warmup_s, "ms_per_frame": 1000 * seconds / frames_total, "found": found}


def run_child(frames_total: int, warmup: int, pad_from, trim_every: int) -> dict:
    code = ("import json; from bench.detect_memory import child; "
            f"print(json.dumps(child({frames_total}, {pad_from!r}, {trim_every}, {warmup})))")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run([sys.executable, "-c", code], cwd=common.ROOT, env=env, capture_output=True, text=True,
                         check=False)
    if out.returncode:
        raise SystemExit(f"the detection run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=1600, help="frames per way (default 1600)")
    args = p.parse_args(argv)
    frames_total = 120 if args.quick else args.frames
    roof, load_before = common.rooflines(args.quick), common.machine()["load_average_1_5_15"]
    warmup = frames_total // 4
    results = {way: run_child(frames_total, warmup, *how) for way, how in WAYS.items()}
    growth = {way: rss_slope(r["samples"], r["warmup_s"]) for way, r in results.items()}
    rows = [{"way": way, "frames": frames_total, "ms_per_frame": round(r["ms_per_frame"], 1),
             "rss_start_mib": round(growth[way]["start_MiB"]), "rss_end_mib": round(growth[way]["end_MiB"]),
             "mib_per_1000_frames": round(growth[way]["per_1000_frames"], 2)} for way, r in results.items()]
    naive, padded, watcher = rows
    found = [r["found"] for r in results.values()]
    same = found[1] == found[0] == found[2]
    goals = [common.goal("RSS growth after warm-up, as door watch runs", f"< {FLAT_MIB_PER_1000} MiB / 1,000 frames",
                         watcher["mib_per_1000_frames"], watcher["mib_per_1000_frames"] < FLAT_MIB_PER_1000),
             common.goal("the same faces found as unpadded (first 40 frames)", "identical boxes", same, same),
             common.goal("time per frame, as door watch runs vs the naive way", "<= 1.1x",
                         round(watcher["ms_per_frame"] / naive["ms_per_frame"], 2),
                         watcher["ms_per_frame"] <= 1.1 * naive["ms_per_frame"])]
    notes = [f"load average (1, 5, 15 min) before: {load_before}, after: {common.machine()['load_average_1_5_15']}",
             f"warm-up: {warmup} frames; RSS sampled 16 times (psutil)"]
    common.write("detect_memory" + ("_quick" if args.quick else ""), rows, goals, roof, args.out, notes,
                 extra={"samples": {way: r["samples"] for way, r in results.items()}})
    return {"rows": rows, "goals": goals}


if __name__ == "__main__":
    main()
