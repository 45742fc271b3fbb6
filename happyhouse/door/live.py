"""``serve --watch SOURCE``: the watcher on a thread beside the HTTP API, sharing its database and model.

The thread opens its own FaceDB and EventLog connections on the server's database file (SQLite
objects stay on the thread that made them) and takes the service's model lock for detection and
embedding, so requests and frames never use the model at once. Each event is stored (one
transaction), printed as a JSON line, handed to the hooks, and announced through ``notify`` (the
live stream then reads it from the database).

    live = prepare(args, db_path)              # options checked, source opened: UsageError/exit 2 if not
    live.start(embedder, model_lock, notify)   # returns at once
    live.stop()                                # at shutdown: the frame in hand is finished, its events stored
"""
from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

from happyhouse.door import face_db, recognition, watch_cli
from happyhouse.door.events import EventLog
from happyhouse.door.mqtt import MqttPublisher
from happyhouse.door.sources import open_source
from happyhouse.door.watch import Watcher, WatchSettings

#: ``serve`` options that only mean something with ``--watch`` (their default is None).
WATCH_ONLY = ("fps", "max_frames", "give_up_after", "on_match", "webhook", "mqtt", "mqtt_camera", "keep_days")
#: Seconds ``stop`` waits for the frame in hand.
STOP_WAIT = 30.0


class SharedModelWatcher(Watcher):
    """A Watcher whose detection and embedding hold ``model_lock`` (the service's)."""

    def __init__(self, *args, model_lock: threading.Lock, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_lock = model_lock

    def sightings(self, frame):
        with self.model_lock:
            return super().sightings(frame)


class LiveWatch:
    """One watcher thread over an opened ``source`` (see the module docstring)."""

    def __init__(self, db_path: Path, settings: WatchSettings, hooks: list, source, search: str = "auto"):
        self.db_path, self.settings, self.hooks, self.source, self.search = db_path, settings, hooks, source, search
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, embedder, model_lock: threading.Lock, notify=None) -> None:
        """Start watching; ``notify()`` is called (from the thread) after each event is stored."""
        self._thread = threading.Thread(target=self._run, args=(embedder, model_lock, notify or (lambda: None)),
                                        name="door-watch", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to stop after the frame in hand (safe from a signal handler)."""
        self._stop.set()
        self.source.stop()

    def stop(self) -> None:
        """Stop and wait for the thread (every decided event is stored before it ends), then the hooks
        (``Hooks`` and, with --mqtt, the ``MqttPublisher``)."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(STOP_WAIT)
            if self._thread.is_alive():
                print(f"watch: still busy after {STOP_WAIT:g} s; leaving it.", file=sys.stderr, flush=True)
        for hook in self.hooks:
            hook.close()

    def _run(self, embedder, model_lock, notify) -> None:
        def emit(event: dict) -> None:
            print(json.dumps(event), flush=True)
            notify()

        try:
            with face_db.FaceDB(self.db_path, create=False, search=self.search) as db, \
                    EventLog(self.db_path, self.settings.snapshots) as event_log:
                if self.settings.keep_days:
                    event_log.prune(self.settings.keep_days)
                watcher = SharedModelWatcher(db, embedder, event_log, self.settings, self.hooks, emit,
                                             model_lock=model_lock)
                summary = watcher.run(self.source, self._stop)
            print(f"watch: {summary.line()}", file=sys.stderr, flush=True)
        except Exception as err:   # the API stays up; the log says why the watcher stopped
            print(f"watch: {self.settings.source} stopped: {err}", file=sys.stderr, flush=True)
        finally:
            self.source.close()


def prepare(args, db_path: Path) -> LiveWatch | None:
    """``serve``'s watcher from its options (None without --watch): the settings checked, somebody
    enrolled, the hooks made and the source opened, so a mistake is one clear error before the model loads."""
    if args.source is None:
        given = [f"--{name.replace('_', '-')}" for name in WATCH_ONLY if getattr(args, name) is not None]
        if given:
            raise recognition.UsageError(f"{', '.join(given)} only work with --watch SOURCE.")
        return None
    settings = watch_cli.watch_settings(args)
    with face_db.FaceDB(db_path, create=False, timeout=args.timeout) as db:
        recognition.require_someone(db)
    hooks = [watch_cli.make_hooks(args)]
    to_mqtt = watch_cli.mqtt_settings(args)
    source = open_source(args.source, settings.fps, give_up_after=settings.give_up_after)
    if to_mqtt:
        hooks.append(MqttPublisher(to_mqtt))
    return LiveWatch(db_path, settings, hooks, source, args.search)
