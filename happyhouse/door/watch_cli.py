"""``door watch SOURCE`` and ``door log``: the command-line side of the watcher (parsers and commands,
registered by :mod:`happyhouse.door.cli`).

    door watch door.mp4 --agree 3 --window 5 --cooldown 60 --on-match "relay-pulse 17"
    door watch rtsp://cam.local/stream1 --webhook https://ha.local/api/webhook/door --keep-days 30
    DOOR_MQTT_USERNAME=door DOOR_MQTT_PASSWORD=... door watch 0 --mqtt mqtt://ha.local/happyhouse --mqtt-camera front
    door log --name kian --since 2h --json
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from happyhouse.door import face_db, recognition
from happyhouse.door.events import EventLog, format_event, parse_since
from happyhouse.door.hooks import HookSettings, Hooks
from happyhouse.door.mqtt import MqttPublisher, MqttSettings, camera_name
from happyhouse.door.sources import open_source
from happyhouse.door.watch import Watcher, WatchSettings


def add_parsers(sub, common: argparse.ArgumentParser) -> None:
    """Add ``watch`` and ``log`` to the door's subcommands."""
    p = sub.add_parser("watch", parents=[common], help="watch a camera, video or folder of frames; "
                                                       "one event per person decided")
    p.add_argument("source", metavar="SOURCE", help="video file, folder of frames, http(s):// (MJPEG) or "
                                                   "rtsp:// URL, or camera index (0)")
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
    p.add_argument("--agree", type=int, default=3, metavar="K", help="sightings that must name the person (default 3)")
    p.add_argument("--window", type=int, default=5, metavar="N", help="... among a face's last N (default 5)")
    p.add_argument("--cooldown", type=float, default=60.0, help="seconds before a person is admitted again (60)")
    p.add_argument("--iou", type=float, default=0.3, help="box overlap that continues a track (default 0.3)")
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
    p.add_argument("--mqtt-camera", default=None, metavar="NAME",
                   help="the camera's topic level (default: made from SOURCE, e.g. door.mp4 -> door)")
    add_log_options(p)


def add_log_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keep-days", type=float, default=None, metavar="D",
                   help="delete events (and their snapshots) older than D days")
    p.add_argument("--snapshots", type=Path, default=None, metavar="DIR",
                   help="folder for unknown visitors' face snapshots (default DB.snapshots, mode 0700)")


def watch_settings(args) -> WatchSettings:
    return WatchSettings(source=args.source, fps=args.fps, agree=args.agree, window=args.window,
                         cooldown=args.cooldown, min_iou=args.iou, max_frames=args.max_frames,
                         threshold=args.threshold, crop=args.crop, keep_days=args.keep_days,
                         give_up_after=args.give_up_after, snapshots=args.snapshots).check()


def make_hooks(args) -> Hooks:
    try:
        return Hooks(HookSettings(on_match=args.on_match, webhook=args.webhook))
    except ValueError as err:   # a bad --webhook URL or an unbalanced quote in --on-match
        raise recognition.UsageError(str(err)) from None


def mqtt_settings(args) -> MqttSettings | None:
    """What --mqtt asks for (None without it); UsageError for a bad URL."""
    if not getattr(args, "mqtt", None):
        return None
    try:
        return MqttSettings.from_url(args.mqtt, args.mqtt_camera or camera_name(args.source))
    except ValueError as err:
        raise recognition.UsageError(str(err)) from None


def stop_on_signals(stop: threading.Event, source) -> dict:
    """SIGINT/SIGTERM: finish the frame in hand, then stop (a second signal stops at once).
    Returns the handlers replaced (for :func:`restore_signals`)."""
    def handler(signum, _frame):
        if stop.is_set():
            raise KeyboardInterrupt
        print(f"{signal.Signals(signum).name}: stopping after this frame.", file=sys.stderr, flush=True)
        stop.set()
        source.stop()

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def restore_signals(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def cmd_watch(args) -> int:
    settings = watch_settings(args)
    hooks = make_hooks(args)
    to_mqtt = mqtt_settings(args)
    path = args.db or face_db.default_path()
    with face_db.FaceDB(path, create=False, timeout=args.timeout, search=args.search) as db:
        recognition.require_someone(db)
        with EventLog(path, args.snapshots, args.timeout) as event_log:
            if settings.keep_days:
                event_log.prune(settings.keep_days)
            source = open_source(args.source, settings.fps, give_up_after=settings.give_up_after)
            try:
                embedder = recognition.load_embedder(args.model)
            except BaseException:
                source.close()
                raise
            stop = threading.Event()
            previous = stop_on_signals(stop, source)
            mqtt = MqttPublisher(to_mqtt) if to_mqtt else None
            watcher = Watcher(db, embedder, event_log, settings, [hooks, mqtt] if mqtt else hooks)
            try:
                summary = watcher.run(source, stop)
            finally:
                hooks.close()
                if mqtt:
                    mqtt.close()
                restore_signals(previous)
    print(summary.line(), file=sys.stderr)
    return 0


def cmd_log(args) -> int:
    path = args.db or face_db.default_path()
    try:
        since = parse_since(args.since) if args.since else None
    except ValueError as err:
        raise recognition.UsageError(str(err)) from None
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
