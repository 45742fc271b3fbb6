"""Watchers on threads, one per camera, sharing one model: ``door watch CAM1 CAM2 ...`` and
``serve --watch SOURCE`` (beside the HTTP API).

Each thread opens its own FaceDB and EventLog connections on the database file (SQLite objects
stay on the thread that made them) and takes the shared model lock for detection and embedding,
so frames of several cameras and HTTP requests never use the model at once. Each event is stored
(one transaction), printed as one JSON line, handed to the hooks, and announced through ``notify``
(the server's live stream then reads it from the database).

    cameras = LiveWatch(db_path, [(settings, open_source(...)), ...], hooks)   # watch_cli.prepare_live
    cameras.start(embedder, model_lock, notify)   # returns at once
    cameras.wait()                                # until every source ends (door watch)
    cameras.stop()                                # the frames in hand finished, their events stored
"""
from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

from happyhouse.door import face_db
from happyhouse.door.events import EventLog
from happyhouse.door.sources import SourceError, describe
from happyhouse.door.watch import Summary, Watcher

#: Seconds ``stop`` waits for each camera's frame in hand.
STOP_WAIT = 30.0


class SharedModelWatcher(Watcher):
    """A Watcher whose detection and embedding hold ``model_lock`` (shared by cameras and requests)."""

    def __init__(self, *args, model_lock: threading.Lock, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_lock = model_lock

    def sightings(self, frame):
        with self.model_lock:
            return super().sightings(frame)


class LiveWatch:
    """One watcher thread per camera: ``cameras`` [(WatchSettings, opened source)], all handing
    their events to ``hooks`` (objects with ``submit(event)`` and ``close()``)."""

    def __init__(self, db_path: Path, cameras: list, hooks: list, search: str = "auto",
                 timeout: float = face_db.DEFAULT_TIMEOUT):
        self.db_path, self.cameras, self.hooks, self.search, self.timeout = db_path, cameras, hooks, search, timeout
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self.print_lock = threading.Lock()
        self.summaries: dict[str, Summary] = {}     # source -> what its run did, once it has stopped
        self.failures: dict[str, Exception] = {}    # source -> why it stopped early

    @property
    def where(self) -> str:
        """The sources watched, as events name them (credentials removed)."""
        return ", ".join(describe(settings.source) for settings, _ in self.cameras)

    def start(self, embedder, model_lock: threading.Lock, notify=None) -> None:
        """Start watching; ``notify()`` is called (from a camera's thread) after each event is stored."""
        for k, (settings, source) in enumerate(self.cameras):
            thread = threading.Thread(target=self.run_camera, args=(settings, source, embedder, model_lock,
                                                                    notify or (lambda: None)),
                                      name=f"door-watch-{k}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def request_stop(self) -> None:
        """Ask every camera to stop after the frame in hand (safe from a signal handler)."""
        self.stop_event.set()
        for _, source in self.cameras:
            source.stop()

    def wait(self, poll: float = 0.5) -> None:
        """Return when every camera's source has ended or stopped (signals are handled meanwhile)."""
        for thread in self.threads:
            while thread.is_alive():
                thread.join(poll)

    def stop(self) -> None:
        """Stop and wait for the threads (every decided event is stored before they end), then the
        hooks (``Hooks`` and, with --mqtt, the ``MqttPublisher``)."""
        self.request_stop()
        for thread in self.threads:
            thread.join(STOP_WAIT)
            if thread.is_alive():
                print(f"watch: {thread.name} still busy after {STOP_WAIT:g} s; leaving it.", file=sys.stderr, flush=True)
        for hook in self.hooks:
            hook.close()

    def close(self) -> None:
        """Close every source and hook (when the watchers never start)."""
        for _, source in self.cameras:
            source.close()
        for hook in self.hooks:
            hook.close()

    def emit(self, event: dict) -> None:
        """One JSON line on stdout, whole even when several cameras decide at once."""
        with self.print_lock:
            sys.stdout.write(json.dumps(event) + "\n")
            sys.stdout.flush()

    def run_camera(self, settings, source, embedder, model_lock, notify) -> None:
        def emit(event: dict) -> None:
            self.emit(event)
            notify()

        name = describe(settings.source)
        try:
            with face_db.FaceDB(self.db_path, create=False, timeout=self.timeout, search=self.search) as db, \
                    EventLog(self.db_path, settings.snapshots, self.timeout) as event_log:
                if settings.keep_days:
                    event_log.prune(settings.keep_days)
                watcher = SharedModelWatcher(db, embedder, event_log, settings, self.hooks, emit,
                                             model_lock=model_lock)
                summary = watcher.run(source, self.stop_event)
            self.summaries[name] = summary
            print(f"watch: {name}: {summary.line()}", file=sys.stderr, flush=True)
            if getattr(source, "gave_up", None):   # a camera that stayed down failed: door watch exits 2
                raise SourceError(source.gave_up)
        except Exception as err:   # the other cameras and the API stay up; the log says why this one stopped
            self.failures[name] = err
            print(f"watch: {name} stopped: {err}", file=sys.stderr, flush=True)
        finally:
            source.close()
