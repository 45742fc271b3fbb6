"""docs/watch_timeline.png: what `door watch` saw and decided on a made-up door video.

The video is built in a temporary folder from ../shared/faces (never kept): barack_obama and
kit_harington are enrolled from two photos each; the video shows their other photos panned
and zoomed, two strangers, a frame of noise, two people at once and cuts. Each dot is one
face in one processed frame (its track on the y axis, green when that frame named someone
known, grey "unknown"); a diamond is the track's decision, labelled with the event.

    PYTHONPATH=. FACES_DATA=../shared/faces python tools/make_watch_timeline.py [--out docs/watch_timeline.png]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from happyhouse import data
from happyhouse.door import face_db, recognition
from happyhouse.door.events import EventLog
from happyhouse.door.sources import open_source
from happyhouse.door.watch import Watcher, WatchSettings
from happyhouse.image_io import read_rgb

SCENES = [("barack_obama/3.jpg",), ("paul_rudd/1.jpg",), (), ("kit_harington/3.jpg", "shea_whigham/1.jpg"),
          ("barack_obama/4.jpg",)]


def frames_of(people: Path, photos: tuple, n: int = 8) -> list[np.ndarray]:
    """``photos`` side by side on 640x480, panned and zoomed over ``n`` frames (noise when empty)."""
    import cv2
    if not photos:
        return [np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)]
    out = []
    for i in range(n):
        canvas = np.full((480, 640, 3), 96, np.uint8)
        slot = 640 // len(photos)
        for j, name in enumerate(photos):
            img = read_rgb(people / name)
            s = min((slot - 20) / img.shape[1], 420 / img.shape[0]) * (0.85 + 0.25 * i / (n - 1))
            img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)[:480, :slot]
            h, w = img.shape[:2]
            x, y = max(0, slot * j + (slot - w) // 2 - 30 + 60 * i // (n - 1)), (480 - h) // 2
            w = min(w, 640 - x)
            canvas[y:y + h, x:x + w] = img[:, :w]
        out.append(canvas)
    return out


def main(argv=None) -> None:
    import cv2
    import matplotlib
    matplotlib.use("Agg")

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/watch_timeline.png"))
    args = p.parse_args(argv)
    people = data.find_folder("faces") / "people"
    embedder = recognition.load_embedder("inception-resnet-v1")
    dots, events, decisions = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        db_path, video = Path(tmp) / "faces.db", Path(tmp) / "door.avi"
        with face_db.FaceDB(db_path) as db:
            for person in ("barack_obama", "kit_harington"):
                photos = [read_rgb(people / person / n) for n in ("1.jpg", "2.jpg")]
                db.enroll(person, recognition.embed_single_faces(embedder, photos, ["1", "2"])[1], embedder.name,
                          [f"{person}1", f"{person}2"])
        writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (640, 480))
        for photos in SCENES:
            for frame in frames_of(people, photos):
                writer.write(np.ascontiguousarray(frame[..., ::-1]))
        writer.release()
        with face_db.FaceDB(db_path) as db, EventLog(db_path) as log:
            watcher = Watcher(db, embedder, log, WatchSettings(source="door.avi"), emit=events.append)
            update = watcher.tracker.update

            def traced(sightings, t):
                decided = update(sightings, t)
                dots.extend((t, tr.id, tr.history[-1].name) for tr in watcher.tracker.tracks if tr.last_t == t)
                decisions.extend(decided)
                return decided
            watcher.tracker.update = traced
            watcher.run(open_source(str(video)))
    held = [d for d in decisions if d.track not in {e["track"] for e in events}]
    plot(dots, events, held, args.out)
    print(f"wrote {args.out}")


def plot(dots, events, held: list, out: Path) -> None:
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 3.2), dpi=110)
    for t, track, name in dots:
        ax.plot(t, track, "o", ms=6, color="tab:green" if name != "unknown" else "0.6")
    for e in events:
        ax.plot(e["decided_at"], e["track"], "D", ms=11, mfc="none", mec="black", mew=1.6)
        ax.annotate(f"{e['name']} ({e['frames']} frames, d={e['distance']:.2f})", (e["decided_at"], e["track"]),
                    xytext=(8, 6), textcoords="offset points", fontsize=8)
    for d in held:
        ax.plot(d.t, d.track, "X", ms=11, color="tab:red")
        ax.annotate(f"{d.name} again: held back by the cooldown", (d.t, d.track), xytext=(-10, 12), ha="right",
                    textcoords="offset points", fontsize=8)
    last = max(t for _, t, _ in dots) if dots else 0
    ax.set(xlabel="video time (s)", ylabel="track", yticks=range(1, last + 2),
           title=f"door watch: {len(events)} events, {len(held)} repeat admission held back by the cooldown")
    ax.plot([], [], "o", color="tab:green", label="frame names someone known")
    ax.plot([], [], "o", color="0.6", label="frame says unknown")
    ax.plot([], [], "D", mfc="none", mec="black", label="decision (3 of 5)")
    ax.plot([], [], "X", color="tab:red", label="decided, not admitted again")
    ax.set_ylim(0.5, last + 0.9)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)


if __name__ == "__main__":
    main()
