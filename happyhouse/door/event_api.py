"""The access log over HTTP, for clients holding the token (added to the app by :mod:`service`):

    GET /events                    {"events": [...]}: rows as ``door log --json`` prints them, oldest first;
                                   ?name=N, ?since=T (2026-12-04T10:00 or 2h), ?limit=L (the newest L, 100)
    GET /events/stream             server-sent events: one ``id: N`` / ``data: {row}`` message per new event
                                   (?name=N; a ``Last-Event-ID`` header replays the events after N first)
    GET /events/{id}/snapshot      an unknown visitor's face snapshot (image/jpeg)

In answers, ``snapshot`` is the snapshot's URL on this server, never a path on its disk. A
snapshot is served only when the event's file lies directly in the server's snapshot folder
(symlinks resolved). The stream is a cursor over the events table: woken by the watcher after each
event, and polling every second besides (events stored by another process appear too).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Header, HTTPException, Query
from fastapi.responses import Response, StreamingResponse

from happyhouse.door.events import EventLog, parse_since

#: Seconds between polls of the events table while nothing wakes a stream.
POLL = 1.0
#: Seconds of silence after which a stream sends a comment line (keeps proxies and clients from timing out).
KEEPALIVE = 15.0
#: Events read per query of a stream.
BATCH = 100


class Wakeup:
    """Wakes every open stream when an event is stored; ``notify`` may be called from any thread."""

    def __init__(self):
        self.loop: asyncio.AbstractEventLoop | None = None
        self.waiters: set[asyncio.Event] = set()
        self.closed = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def notify(self) -> None:
        if self.loop is not None:
            try:
                self.loop.call_soon_threadsafe(self._wake)
            except RuntimeError:   # the loop has closed: nobody is listening
                pass

    def close(self) -> None:
        """End every stream (at shutdown)."""
        self.closed = True
        self.notify()

    def _wake(self) -> None:
        for waiter in self.waiters:
            waiter.set()


def public_row(row: dict) -> dict:
    """An event row for a client: the snapshot as its URL on this server (or None)."""
    return {**row, "snapshot": f"/events/{row['id']}/snapshot" if row.get("snapshot") else None}


def sse_message(row: dict) -> str:
    """One event as a server-sent-events message."""
    return f"id: {row['id']}\ndata: {json.dumps(public_row(row))}\n\n"


def snapshot_file(stored: str | None, folder: Path) -> Path | None:
    """The file ``stored`` names if it is a .jpg directly inside ``folder`` (both resolved), else None."""
    if not stored:
        return None
    path, root = Path(stored).resolve(), Path(folder).resolve()
    return path if path.parent == root and path.suffix == ".jpg" and path.is_file() else None


async def messages(door, after: int, name: str | None, wakeup: Wakeup):
    """The stream's text: a first comment, then each event after ``after``, keep-alive comments between."""
    waiter = asyncio.Event()
    wakeup.waiters.add(waiter)
    try:
        yield ": the door's events\nretry: 3000\n\n"
        sent = time.monotonic()
        while not wakeup.closed:
            waiter.clear()
            rows = await door.read_events_async(EventLog.after, after, name, BATCH)
            for row in rows:
                yield sse_message(row)
                after, sent = row["id"], time.monotonic()
            if len(rows) == BATCH:
                continue
            if time.monotonic() - sent >= KEEPALIVE:
                yield ": keep-alive\n\n"
                sent = time.monotonic()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(waiter.wait(), POLL)
    finally:
        wakeup.waiters.discard(waiter)


def add_event_routes(app: FastAPI, door, admin: list) -> None:
    """Register /events, /events/stream and /events/{id}/snapshot (each needs the token: ``admin``)."""

    @app.get("/events", dependencies=admin)
    def events(name: str | None = None, since: str | None = None,
               limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> dict:
        """The watcher's events, oldest first (the rows of `door log --json`; `snapshot` is a URL here)."""
        try:
            start = parse_since(since) if since else None
        except ValueError as err:
            raise HTTPException(400, str(err).replace("--since", "since", 1)) from None
        rows = door.read_events(EventLog.query, name, start, limit, True)
        return {"events": [public_row(r) for r in rows]}

    @app.get("/events/stream", dependencies=admin, response_class=StreamingResponse)
    async def stream(name: str | None = None, last_event_id: Annotated[int | None, Header(ge=0)] = None):
        """New events as server-sent events (`text/event-stream`); `Last-Event-ID: N` replays those after N."""
        after = await door.read_events_async(EventLog.last_id) if last_event_id is None else last_event_id
        return StreamingResponse(messages(door, after, name, door.wakeup), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @app.get("/events/{event_id}/snapshot", dependencies=admin, response_class=Response)
    def snapshot(event_id: int) -> Response:
        """An unknown visitor's face snapshot (image/jpeg)."""
        row = door.read_events(EventLog.get, event_id)
        if row is None:
            raise HTTPException(404, f"there is no event {event_id}.")
        path = snapshot_file(row["snapshot"], door.snapshots)
        if path is None:
            raise HTTPException(404, f"event {event_id} has no snapshot on this server (only unknown visitors' "
                                     "events have one, kept in the server's snapshot folder).")
        return Response(path.read_bytes(), media_type="image/jpeg", headers={"Cache-Control": "no-store"})
