"""The door's access log: one row per decision in an ``events`` table of the face database file.

The table lives in the same SQLite file as the faces (WAL, synchronous FULL, 0600), opened on its
own connection with the same rules; each event is one transaction, so a process killed at any
moment leaves every event it reported stored and the file intact. Unknown visitors' face
snapshots are JPEG files (0600) in a private folder (0700), deleted with their events.

    log = EventLog(db_path, snapshots=Path("faces.db.snapshots"))
    row = log.record(event, snapshot=crop)        # event: dict, crop: (h, w, 3) RGB or None
    log.query(name="kian", since=time.time() - 3600)
    log.prune(keep_days=30)
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from happyhouse.door import face_db

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id        INTEGER PRIMARY KEY,
    time      REAL NOT NULL,
    source    TEXT NOT NULL,
    track     INTEGER NOT NULL,
    name      TEXT NOT NULL,
    distance  REAL,
    threshold REAL,
    frames    INTEGER NOT NULL,
    box       TEXT NOT NULL,
    snapshot  TEXT
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (time);
CREATE INDEX IF NOT EXISTS events_by_name ON events (name, time);
"""
COLUMNS = ("id", "time", "source", "track", "name", "distance", "threshold", "frames", "box", "snapshot")
_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class EventLogError(face_db.FaceDBError):
    """The event log cannot be read or written; the message says why."""


def check_keep_days(keep_days: float) -> float:
    """``keep_days`` if it is a positive number of days; ValueError saying so otherwise (-1 or 0 would
    delete every event)."""
    if not 0 < keep_days < float("inf"):
        raise ValueError(f"--keep-days must be a positive number of days, not {keep_days:g}")
    return keep_days


def default_snapshots(db_path: Path) -> Path:
    """Where snapshots go unless told: ``<db>.snapshots`` beside the database."""
    return Path(f"{db_path}.snapshots")


def iso(t: float) -> str:
    """Unix time -> ISO 8601 in UTC with milliseconds."""
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")


#: A snapshot's file name as save_snapshot writes it (UTC time, 8 hex digits).
SNAPSHOT_NAME = re.compile(r"\d{8}T\d{6}-[0-9a-f]{8}\.jpg")


def parse_since(text: str, now: float | None = None) -> float:
    """``--since``: an ISO date/time ("2026-12-04", "2026-12-04T10:00", UTC unless it says) or an
    age ("90s", "15m", "2h", "7d") -> Unix time. ValueError with the accepted forms otherwise."""
    match = _AGO.match(text.strip())
    if match:
        return (time.time() if now is None else now) - float(match[1]) * _UNITS[match[2]]
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--since {text!r}: give a date/time like 2026-12-04T10:00 or an age like 90s, "
                         "15m, 2h or 7d.") from None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def private_folder(folder: Path) -> None:
    """Create ``folder`` 0700 (or set an existing one back to 0700) and make sure a file can be written
    in it; EventLogError saying what to do otherwise (``door watch`` calls it before the model loads)."""
    folder = Path(folder)
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if stat.S_IMODE(folder.stat().st_mode) != 0o700:
            os.chmod(folder, 0o700)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as err:
        raise EventLogError(f"{folder}: cannot make the snapshot folder private ({err.strerror}). "
                            "Pass --snapshots with a folder you own.") from None


class EventLog:
    """The ``events`` table of the database at ``path`` and the snapshot folder ``snapshots``."""

    def __init__(self, path: Path, snapshots: Path | None = None, timeout: float = face_db.DEFAULT_TIMEOUT,
                 create: bool = True):
        """Open the log of an existing face database (FaceDBError if there is none); ``create``: add the
        events table if missing (False for readers: an old file stays as it is)."""
        self.path, self.timeout = Path(path), timeout
        # absolute: the log names the files, and it is read from other folders too
        self.snapshots = (Path(snapshots) if snapshots else default_snapshots(self.path)).absolute()
        with face_db.FaceDB(self.path, create=False, timeout=timeout) as db:   # checks the file, 0600
            db.make_private()
            self.notices = list(db.notices)
        try:
            self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
            self._conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            self._conn.execute("PRAGMA synchronous = FULL")
            if create:
                self._conn.executescript(SCHEMA)
        except sqlite3.Error as err:
            raise EventLogError(f"{self.path}: cannot open the event log ({err}).") from None

    def close(self) -> None:
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def has_table(self) -> bool:
        return bool(self._conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'events'").fetchone())

    # -- writing -------------------------------------------------------------------------
    def record(self, event: dict, snapshot: np.ndarray | None = None) -> dict:
        """Store one event (keys as :data:`COLUMNS`, ``box`` a list) in one transaction; a snapshot
        (h, w, 3) RGB is written (0600, fsynced) first and its path stored. Returns the event with
        ``id`` and ``snapshot`` filled in."""
        event = dict(event)
        event["snapshot"] = self.try_snapshot(snapshot, event["time"]) if snapshot is not None else None
        try:
            with self._conn:
                self._conn.execute("BEGIN IMMEDIATE")
                cur = self._conn.execute(
                    "INSERT INTO events (time, source, track, name, distance, threshold, frames, box, snapshot) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (event["time"], event["source"], event["track"], event["name"], event["distance"],
                     event["threshold"], event["frames"], json.dumps(event["box"]), event["snapshot"]))
        except sqlite3.Error as err:
            raise EventLogError(f"{self.path}: cannot store the event ({err}).") from None
        event["id"] = cur.lastrowid
        return event

    def try_snapshot(self, image: np.ndarray, t: float) -> str | None:
        """``save_snapshot``'s path as text, or None with one line on stderr when it cannot be written
        (the event is stored without it)."""
        try:
            return str(self.save_snapshot(image, t))
        except (EventLogError, OSError) as err:
            print(f"watch: snapshot not saved, the event is stored without it: {err}", file=sys.stderr, flush=True)
            return None

    def save_snapshot(self, image: np.ndarray, t: float) -> Path:
        """Write (h, w, 3) RGB ``image`` as a JPEG readable by the owner only; returns its path."""
        import cv2
        private_folder(self.snapshots)
        ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]))
        if not ok:
            raise EventLogError("cannot encode a snapshot as JPEG.")
        stamp = datetime.fromtimestamp(t, timezone.utc).strftime("%Y%m%dT%H%M%S")
        path = self.snapshots / f"{stamp}-{uuid.uuid4().hex[:8]}.jpg"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, jpeg.tobytes())
            os.fsync(fd)
        finally:
            os.close(fd)
        return path

    def prune(self, keep_days: float, now: float | None = None) -> int:
        """Delete events older than ``keep_days`` and their snapshots (and snapshot files of that age
        no event names, left by a process killed between the file and its row). Only files named as the
        door names them directly in this log's snapshot folder are deleted, never another file, nor one a
        row names elsewhere (a copied database's rows name the first one's). Returns rows deleted.
        ValueError unless ``keep_days`` is a positive number."""
        check_keep_days(keep_days)
        cutoff = (time.time() if now is None else now) - keep_days * 86400
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            old = self._conn.execute("SELECT snapshot FROM events WHERE time < ?", (cutoff,)).fetchall()
            self._conn.execute("DELETE FROM events WHERE time < ?", (cutoff,))
        kept = {r[0] for r in self._conn.execute("SELECT snapshot FROM events WHERE snapshot IS NOT NULL")}
        folder = self.snapshots.resolve()
        doomed = {Path(r[0]) for r in old if r[0] and self.owns(Path(r[0]), folder)}
        if self.snapshots.is_dir():
            doomed |= {p for p in self.snapshots.glob("*.jpg") if SNAPSHOT_NAME.fullmatch(p.name)
                       and str(p) not in kept and p.stat().st_mtime < cutoff}
        for path in doomed:
            path.unlink(missing_ok=True)
        return len(old)

    @staticmethod
    def owns(path: Path, folder: Path) -> bool:
        """Whether ``path`` is a snapshot the door named, directly in ``folder`` (resolved)."""
        return bool(SNAPSHOT_NAME.fullmatch(path.name)) and path.parent.resolve() == folder

    # -- reading -------------------------------------------------------------------------
    def query(self, name: str | None = None, since: float | None = None, limit: int | None = None,
              newest: bool = False) -> list[dict]:
        """Events, oldest first, optionally of one ``name`` and from ``since`` (Unix time); ``limit``:
        the first so many, or with ``newest`` the last so many."""
        where, params = ["1"], []
        if name is not None:
            where, params = where + ["name = ?"], params + [name]
        if since is not None:
            where, params = where + ["time >= ?"], params + [since]
        rows = self._select(" AND ".join(where), params, "time DESC, id DESC" if newest else "time, id", limit)
        return rows[::-1] if newest else rows

    def after(self, event_id: int, name: str | None = None, limit: int = 100) -> list[dict]:
        """Events stored after the one numbered ``event_id``, in the order they were stored (a stream's cursor)."""
        where, params = ("id > ? AND name = ?", [event_id, name]) if name is not None else ("id > ?", [event_id])
        return self._select(where, params, "id", limit)

    def get(self, event_id: int) -> dict | None:
        """The event numbered ``event_id``, or None."""
        rows = self._select("id = ?", [event_id], "id", 1)
        return rows[0] if rows else None

    def last_id(self) -> int:
        """The number of the last event stored (0 when none)."""
        if not self.has_table():
            return 0
        return self._conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]

    def _select(self, where: str, params: list, order: str, limit: int | None) -> list[dict]:
        if not self.has_table():
            return []
        sql = f"SELECT {', '.join(COLUMNS)} FROM events WHERE {where} ORDER BY {order}"
        rows = [dict(zip(COLUMNS, r)) for r in
                self._conn.execute(sql + (f" LIMIT {int(limit)}" if limit else ""), params)]
        for row in rows:
            row["box"] = json.loads(row["box"])
        return rows

def format_event(row: dict) -> str:
    """One event as a text line: time, name, distance, track, source, snapshot."""
    dist = "" if row["distance"] is None else f"{row['distance']:.3f}"
    return "\t".join([iso(row["time"]), row["name"], dist, f"track {row['track']}", row["source"],
                      row["snapshot"] or ""]).rstrip()
