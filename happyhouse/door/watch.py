"""The door watching a camera: frames in, decisions out.

Each processed frame's faces are found, embedded and named through the door's own identify
path (:func:`recognition.identify_result`, the one ``door identify`` and ``/identify`` use),
followed across frames (:mod:`tracking`) and decided per person: K of the last N sightings
agreeing. Each decision becomes one event: stored in the database's ``events`` table
(:mod:`events`, one transaction), printed as a JSON line, and handed to the hooks (:mod:`hooks`).
A person admitted is not admitted again within ``cooldown`` seconds of the source's clock.

    watcher = Watcher(db, embedder, event_log, WatchSettings(source="door.mp4"), emit=print)
    summary = watcher.run(open_source("door.mp4"), stop=threading.Event())
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from happyhouse import runtime
from happyhouse.door import face_db, recognition
from happyhouse.door.detect import FaceNotFoundError
from happyhouse.door.events import EventLog, iso
from happyhouse.door.hooks import Hooks
from happyhouse.door.sources import Frame, describe
from happyhouse.door.tracking import UNKNOWN, Cooldown, Sighting, Tracker

#: Share of a face box added on each side of an unknown visitor's snapshot.
SNAPSHOT_MARGIN = 0.25
#: Seconds between prunings of old events while watching (with --keep-days).
PRUNE_EVERY = 3600.0
#: Processed frames between two returns of the C heap's free memory to the system (runtime.trim_heap).
TRIM_HEAP_EVERY = 50


@dataclass(frozen=True)
class WatchSettings:
    """What ``door watch`` was asked: the ``source`` (as given), frames per second to process (None:
    as many as the machine sustains), K-of-N agreement (``agree`` of ``window``), ``cooldown`` seconds,
    the IoU that continues a track, ``max_frames`` to process (None: until the source ends),
    ``threshold`` (None: the model's), ``crop`` mode, days of events kept (None: all), and seconds a
    stream may stay down before the watcher gives up (None: never)."""
    source: str
    fps: float | None = None
    agree: int = 3
    window: int = 5
    cooldown: float = 60.0
    min_iou: float = 0.3
    max_frames: int | None = None
    threshold: float | None = None
    crop: str = "auto"
    keep_days: float | None = None
    give_up_after: float | None = None
    snapshots: Path | None = field(default=None)

    def check(self) -> "WatchSettings":
        """Itself, or UsageError naming the first impossible value."""
        inf = float("inf")
        problems = [(self.fps is not None and not 0 < self.fps < inf, f"--fps must be positive, not {self.fps}"),
                    (not 1 <= self.agree <= self.window, f"--agree {self.agree} must be between 1 and --window "
                                                         f"{self.window}"),
                    (not 0 <= self.cooldown < inf, f"--cooldown must be 0 or more seconds, not {self.cooldown}"),
                    (not 0 < self.min_iou <= 1, f"--iou must be in (0, 1], not {self.min_iou}"),
                    (self.max_frames is not None and self.max_frames < 1,
                     f"--max-frames must be at least 1, not {self.max_frames}"),
                    (self.keep_days is not None and not 0 < self.keep_days < inf,
                     f"--keep-days must be a positive number of days, not {self.keep_days}"),
                    (self.give_up_after is not None and not 0 < self.give_up_after < inf,
                     f"--give-up-after must be a positive number of seconds, not {self.give_up_after}")]
        for bad, message in problems:
            if bad:
                raise recognition.UsageError(message + ".")
        return self


@dataclass
class Summary:
    """What one run did: frames read from the source, frames processed, events, seconds."""
    frames: int = 0
    processed: int = 0
    events: int = 0
    held_back: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.processed / self.seconds if self.seconds else 0.0
        return (f"watched {self.processed} frame(s) ({rate:.1f}/s, last source frame {self.frames}), "
                f"{self.events} event(s), {self.held_back} repeat admission(s) held back by the cooldown")


def face_snapshot(image: np.ndarray, box, margin: float = SNAPSHOT_MARGIN) -> np.ndarray:
    """The face ``box`` (x, y, w, h) of ``image`` (H, W, 3) with ``margin`` around it, clipped to the frame."""
    x, y, w, h = box
    dx, dy = int(w * margin), int(h * margin)
    H, W = image.shape[:2]
    x0, y0, x1, y1 = max(0, x - dx), max(0, y - dy), min(W, x + w + dx), min(H, y + h + dy)
    return image[y0:y1, x0:x1].copy()


class Watcher:
    """Turns frames into events (see the module docstring). ``emit`` gets each event dict; ``hooks``
    (one or a list of objects with ``submit(event)``) get each event after it is stored."""

    def __init__(self, db: face_db.FaceDB, embedder, event_log: EventLog, settings: WatchSettings,
                 hooks: Hooks | list | None = None, emit=None):
        self.db, self.embedder, self.event_log, self.settings = db, embedder, event_log, settings.check()
        self.hooks = list(hooks) if isinstance(hooks, (list, tuple)) else [hooks] if hooks else []
        self.emit = emit or (lambda event: print(json.dumps(event), flush=True))
        self.source_name = describe(settings.source)
        self.tracker = Tracker(settings.agree, settings.window, settings.min_iou)
        self.cooldown = Cooldown(settings.cooldown)
        self.summary = Summary()

    def sightings(self, frame: Frame) -> list[Sighting]:
        """Every face in ``frame`` named through the door's identify path (top candidate only)."""
        try:
            faces, vectors = recognition.embed_all_faces(self.embedder, frame.image, self.source_name,
                                                         self.settings.crop)
        except FaceNotFoundError:
            return []
        payload, _, _ = recognition.identify_result(self.db, self.source_name, faces, vectors, self.embedder,
                                                    self.settings.threshold, 1)
        return [Sighting(tuple(row["face"]["box"]), row["name"], float(row["distance"]), float(row["threshold"]),
                         face_snapshot(frame.image, row["face"]["box"]),
                         {**row["decision"], "threshold_from": row["threshold_from"], "crop": row["crop"]})
                for row in payload["faces"]]

    def process(self, frame: Frame) -> list[dict]:
        """One frame -> the events it completes (stored, emitted and handed to the hooks)."""
        self.summary.processed += 1
        events = []
        for decision in self.tracker.update(self.sightings(frame), frame.t):
            if not self.cooldown.admit(decision.name, decision.t):
                self.summary.held_back += 1
                continue
            event = {"time": time.time(), "source": self.source_name, "track": decision.track,
                     "name": decision.name, "distance": round(decision.distance, 4),
                     "threshold": decision.threshold, "frames": decision.frames, "box": list(decision.box)}
            stored = self.event_log.record(event, decision.crop if decision.name == UNKNOWN else None)
            stored.update(time=iso(stored["time"]), first_seen=round(decision.first_t, 3),
                          decided_at=round(decision.t, 3), frame=frame.index)
            if decision.why is not None:                   # as the CLI's and the service's --json say
                stored["decision"] = decision.why
            self.summary.events += 1
            self.emit(stored)
            for hook in self.hooks:        # Hooks, MqttPublisher: each returns at once
                hook.submit(stored)
            events.append(stored)
        return events

    def run(self, source, stop: threading.Event | None = None) -> Summary:
        """Process ``source``'s frames until it ends, ``max_frames`` are processed or ``stop`` is set."""
        stop = stop or threading.Event()
        start, pruned = time.monotonic(), time.monotonic()
        try:
            for frame in source.frames():
                self.summary.frames = frame.index + 1
                self.process(frame)
                if self.summary.processed % TRIM_HEAP_EVERY == 0:
                    runtime.trim_heap()
                if stop.is_set() or (self.settings.max_frames and self.summary.processed >= self.settings.max_frames):
                    break
                if self.settings.keep_days and time.monotonic() - pruned > PRUNE_EVERY:
                    self.event_log.prune(self.settings.keep_days)
                    pruned = time.monotonic()
        finally:
            source.close()
            self.summary.seconds = time.monotonic() - start
        return self.summary
