"""``door watch SOURCE`` and ``door log``: the command-line side of the watcher (parsers and commands,
registered by :mod:`happyhouse.door.cli`).

    door watch door.mp4 --agree 3 --window 5 --cooldown 60 --on-match "relay-pulse 17"
    door watch rtsp://cam.local/stream1 --webhook https://ha.local/api/webhook/door --keep-days 30
    DOOR_MQTT_USERNAME=door DOOR_MQTT_PASSWORD=... door watch 0 --mqtt mqtt://ha.local/happyhouse --mqtt-camera front
    door watch rtsp://front.local/stream1 rtsp://back.local/stream1     # several cameras, one model
    door log --name kian --since 2h --json
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path

from happyhouse.door import face_db, recognition
from happyhouse.door.events import (EventLog, check_keep_days, default_snapshots, format_event, parse_since,
                                    private_folder)
from happyhouse.door.hooks import HookSettings, Hooks
from happyhouse.door.live import LiveWatch
from happyhouse.door.mqtt import MqttPublisher, MqttSettings, camera_name, topic_part
from happyhouse.door.sources import describe, open_source
from happyhouse.door.watch import WatchSettings

#: ``serve`` options that only mean something with ``--watch`` (their default is None: given or not;
#: the tracking ones' defaults are WatchSettings').
WATCH_ONLY = ("fps", "agree", "window", "cooldown", "iou", "max_frames", "give_up_after", "on_match", "webhook",
              "mqtt", "mqtt_camera", "keep_days")
#: Tracking options -> their WatchSettings fields.
TRACKING = {"agree": "agree", "window": "window", "cooldown": "cooldown", "iou": "min_iou"}


def add_parsers(sub, common: argparse.ArgumentParser) -> None:
    """Add ``watch`` and ``log`` to the door's subcommands."""
    p = sub.add_parser("watch", parents=[common], help="watch a camera, video or folder of frames; "
                                                       "one event per person decided")
    p.add_argument("source", metavar="SOURCE", nargs="+",
                   help="video file, folder of frames, http(s):// (MJPEG) or rtsp:// URL, or camera index (0); "
                        "several: one thread each, one model; a camera's user and password from DOOR_CAMERA_USERNAME "
                        "and DOOR_CAMERA_PASSWORD, not the URL")
    add_watch_options(p)
    p = sub.add_parser("log", parents=[common], help="the events the watcher stored")
    p.add_argument("--name", default=None, help="only this person's events (or unknown)")
    p.add_argument("--since", default=None, metavar="T",
                   help="from a date/time (2026-12-04T10:00, UTC) or an age (2h, 7d)")
    add_log_options(p)


def add_watch_options(p: argparse.ArgumentParser) -> None:
    """The watcher's options (all but SOURCE), shared by ``watch`` and ``serve --watch``."""
    p.add_argument("--fps", type=float, default=None, help="frames processed per second (default: as many as "
                                                           "the machine sustains; files: every frame)")
    p.add_argument("--agree", type=int, default=None, metavar="K", help="sightings that must name the person (default 3)")
    p.add_argument("--window", type=int, default=None, metavar="N", help="... among a face's last N (default 5)")
    p.add_argument("--cooldown", type=float, default=None, help="seconds before a person is admitted again (60)")
    p.add_argument("--iou", type=float, default=None, help="box overlap that continues a track (default 0.3)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many processed frames")
    p.add_argument("--give-up-after", type=float, default=None,
                   help="seconds a dropped stream may stay down before the watcher stops (default: never)")
    p.add_argument("--on-match", default=None, metavar="CMD",
                   help="command run (no shell) on each match, with DOOR_NAME, DOOR_DISTANCE, ... DOOR_EVENT set")
    p.add_argument("--webhook", default=None, metavar="URL", help="http(s) URL the event JSON is POSTed to")
    p.add_argument("--mqtt", default=None, metavar="URL",
                   help="mqtt[s]://HOST[:PORT][/PREFIX]: each event published to PREFIX/events, the latest retained "
                        "on PREFIX/CAMERA/person and PREFIX/people/NAME (user and password: DOOR_MQTT_USERNAME, "
                        "DOOR_MQTT_PASSWORD)")
    p.add_argument("--mqtt-camera", action="append", default=None, metavar="NAME",
                   help="the camera's topic level (default: made from SOURCE, e.g. door.mp4 -> door); "
                        "with several sources, once per source in their order")
    add_log_options(p)


def add_log_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keep-days", type=float, default=None, metavar="D",
                   help="delete events (and their snapshots) older than D days")
    p.add_argument("--snapshots", type=Path, default=None, metavar="DIR",
                   help="folder for unknown visitors' face snapshots (default DB.snapshots, mode 0700)")


def watch_settings(args, source: str) -> WatchSettings:
    tracking = {field: getattr(args, option) for option, field in TRACKING.items() if getattr(args, option) is not None}
    return WatchSettings(source=source, fps=args.fps, **tracking, max_frames=args.max_frames,
                         threshold=args.threshold, crop=args.crop, keep_days=args.keep_days,
                         give_up_after=args.give_up_after, snapshots=args.snapshots).check()


def make_hooks(args) -> Hooks:
    try:
        return Hooks(HookSettings(on_match=args.on_match, webhook=args.webhook))
    except ValueError as err:   # a bad --webhook URL or an unbalanced quote in --on-match
        said = str(err)
        raise recognition.UsageError(said if said.startswith("--") else f"--on-match: {said}") from None


def mqtt_settings(args) -> MqttSettings | None:
    """What --mqtt asks for (None without it), a topic level per source; UsageError for a bad URL
    or --mqtt-camera given neither once per source nor not at all."""
    if not getattr(args, "mqtt", None):
        return None
    names = args.mqtt_camera or [camera_name(source) for source in args.source]
    if len(names) != len(args.source):
        raise recognition.UsageError(f"--mqtt-camera: give one per SOURCE ({len(args.source)}), in their order, "
                                     "or none (names made from the sources).")
    try:
        settings = MqttSettings.from_url(args.mqtt, names[0])
    except ValueError as err:
        raise recognition.UsageError(str(err)) from None
    return replace(settings, cameras=unique_cameras(args.source, names))


def unique_cameras(sources: list, names: list) -> dict:
    """{source as events name it: topic level}, a name taken twice made unique (front, front_2)."""
    cameras, taken = {}, set()
    for source, name in zip(sources, names):
        base, k = topic_part(name), 1
        while (name := base if k == 1 else f"{base}_{k}") in taken:
            k += 1
        taken.add(name)
        cameras[describe(source)] = name
    return cameras


def prepare_live(args, db_path) -> LiveWatch | None:
    """The watchers ``args`` ask for (None without a source): the settings checked, somebody
    enrolled, the hooks made and every source opened, so a mistake is one clear error (exit 2)
    before the model loads."""
    sources = args.source or []
    if not sources:
        given = [f"--{name.replace('_', '-')}" for name in WATCH_ONLY if getattr(args, name) is not None]
        if given:
            raise recognition.UsageError(f"{', '.join(given)} only work with --watch SOURCE.")
        return None
    settings, to_mqtt = [watch_settings(args, source) for source in sources], mqtt_settings(args)
    with face_db.FaceDB(db_path, create=False, timeout=args.timeout) as db:
        recognition.require_someone(db)
    for folder in {s.snapshots or default_snapshots(Path(db_path)) for s in settings}:
        private_folder(folder)
    hooks = [make_hooks(args)]
    cameras = []
    try:
        for s in settings:
            cameras.append((s, open_source(s.source, s.fps, give_up_after=s.give_up_after)))
    except BaseException:
        for _, source in cameras:
            source.close()
        hooks[0].close()
        raise
    if to_mqtt:
        hooks.append(MqttPublisher(to_mqtt))
    return LiveWatch(db_path, cameras, hooks, args.search, args.timeout)


def stop_on_signals(stop: threading.Event, *sources) -> dict:
    """SIGINT/SIGTERM: finish the frame in hand, then stop (a second signal stops at once).
    Returns the handlers replaced (for :func:`restore_signals`)."""
    def handler(signum, _frame):
        if stop.is_set():
            raise KeyboardInterrupt
        print(f"{signal.Signals(signum).name}: stopping after this frame.", file=sys.stderr, flush=True)
        stop.set()
        for source in sources:
            source.stop()

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def restore_signals(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def cmd_watch(args) -> int:
    """``door watch SRC [SRC ...]``: a watcher thread per source, one model shared under a lock.
    Exit 0 when every source ended or was stopped, 2 when one failed (its error printed)."""
    db_path = args.db or face_db.default_path()
    cameras = prepare_live(args, db_path)
    try:
        embedder = recognition.load_embedder(args.model)
        with face_db.FaceDB(db_path, create=False, timeout=args.timeout) as db:  # before any camera starts
            recognition.say_audit_on_open(db, embedder)
    except BaseException:
        cameras.close()
        raise
    previous = stop_on_signals(cameras.stop_event, *(source for _, source in cameras.cameras))
    try:
        cameras.start(embedder, threading.Lock())
        cameras.wait()
    finally:
        cameras.stop()
        restore_signals(previous)
    return 2 if cameras.failures else 0


def cmd_log(args) -> int:
    path = args.db or face_db.default_path()
    try:
        since = parse_since(args.since) if args.since else None
    except ValueError as err:
        raise recognition.UsageError(str(err)) from None
    try:
        if args.keep_days is not None:
            check_keep_days(args.keep_days)
    except ValueError as err:
        raise recognition.UsageError(f"{err}.") from None
    with EventLog(path, args.snapshots, args.timeout, create=args.keep_days is not None) as event_log:
        pruned = event_log.prune(args.keep_days) if args.keep_days else 0
        rows = event_log.query(name=args.name, since=since)
    if args.json:
        print(json.dumps({"events": rows, "pruned": pruned}, indent=2))
    else:
        print("\n".join(format_event(r) for r in rows) or "no events")
    if pruned:
        print(f"pruned {pruned} event(s) older than {args.keep_days:g} days", file=sys.stderr)
    return 0


COMMANDS = {"watch": cmd_watch, "log": cmd_log}
