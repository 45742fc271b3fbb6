"""`door serve --watch SOURCE`: the watcher beside the HTTP API, /events, the server-sent-events stream
and the snapshots, on a real server process watching a loopback MJPEG camera made here.

The camera (videos built as in test_door_watch, from ../shared/faces) shows an empty hall until the
test opens its gate, so the stream is listened to before anything happens; then barack_obama's
unenrolled photo and a stranger (paul_rudd) pass, and the hall is empty again until the end.
Expected: both decided once, each event in GET /events and in the live stream, the stranger's
snapshot served only with the token, no path on the server in any answer, and SIGTERM with a
stream open stops the server and the watcher promptly.
"""
import http.client
import json
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest

from test_door_service import TOKEN, Server, integrity
from test_door_watch import FPS, SIZE, door  # noqa: F401  (door: the watch tests' database and scenes)

WAIT = 180   # seconds for an event to arrive (2 shared cores, a model per process)


class GatedCamera(BaseHTTPRequestHandler):
    """One MJPEG stream: an empty hall until ``gate`` is set, then ``clip``, then the hall until ``done``."""
    gate, done, clip = threading.Event(), threading.Event(), []

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        hall = np.full((SIZE[1], SIZE[0], 3), 96, np.uint8)
        try:
            while not self.gate.is_set() and not self.done.is_set():
                self.send_frame(hall)
            for frame in self.clip:
                self.send_frame(frame)
            while not self.done.is_set():
                self.send_frame(hall)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def send_frame(self, frame):
        jpeg = cv2.imencode(".jpg", np.ascontiguousarray(frame[..., ::-1]))[1].tobytes()
        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                         + jpeg + b"\r\n")
        time.sleep(1 / FPS)

    def log_message(self, *args):
        pass


class EventStream:
    """A client of GET /events/stream: ``next()`` is the next message's (id, data) (comments skipped)."""

    def __init__(self, port, headers=None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
        self.conn.request("GET", "/events/stream", headers={"Authorization": f"Bearer {TOKEN}", **(headers or {})})
        self.resp = self.conn.getresponse()
        self.comments = []

    def next(self, wait=WAIT):
        event_id, data, deadline = None, None, time.monotonic() + wait
        while True:
            assert time.monotonic() < deadline, f"no event within {wait} s (comments: {self.comments[-3:]})"
            line = self.resp.readline()
            if not line:
                return None                      # the server ended the stream
            line = line.decode().rstrip("\n")
            if line.startswith(":"):
                self.comments.append(line)
            elif line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: "):
                data = json.loads(line[6:])
            elif line == "" and data is not None:
                return event_id, data

    def close(self):
        self.conn.close()


@pytest.fixture(scope="module")
def watching(door):  # noqa: F811  (the imported fixture)
    db, folder, scenes = door
    GatedCamera.clip = ((scenes["obama"] + scenes["obama"][::-1]) * 2           # forth and back, one track each
                        + (scenes["stranger"] + scenes["stranger"][::-1]) * 2)
    camera = ThreadingHTTPServer(("127.0.0.1", 0), GatedCamera)
    threading.Thread(target=camera.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{camera.server_port}/door.mjpg"
    srv = Server(folder, extra=("--watch", url, "--cooldown", "600"))
    stream = EventStream(srv.port)                     # listening before anyone comes
    assert stream.resp.status == 200 and stream.resp.getheader("Content-Type").startswith("text/event-stream")
    GatedCamera.gate.set()
    received = [stream.next(), stream.next()]
    yield srv, stream, received
    GatedCamera.done.set()
    stream.close()
    srv.stop()
    camera.shutdown()


def get(srv, path, token=TOKEN):
    """GET ``path`` -> (status, raw body bytes, Content-Type)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.getheader("Content-Type")
    finally:
        conn.close()


def test_the_stream_carries_each_decision_as_it_is_made(watching):
    srv, stream, received = watching
    assert [data["name"] for _, data in received] == ["barack_obama", "unknown"], received
    obama, stranger = (data for _, data in received)
    assert [i for i, _ in received] == [obama["id"], stranger["id"]] and obama["id"] < stranger["id"]
    assert obama["distance"] < obama["threshold"] <= stranger["distance"] and obama["frames"] >= 3
    assert obama["snapshot"] is None and stranger["snapshot"] == f"/events/{stranger['id']}/snapshot"
    assert stream.comments[0] == ": the door's events"


def test_get_events_answers_the_rows_as_door_log_json(watching, capsys):
    srv, _, received = watching
    status, body, ctype = get(srv, "/events")
    assert status == 200 and ctype == "application/json"
    rows = json.loads(body)["events"]
    assert [(r["id"], r["name"]) for r in rows] == [(d["id"], d["name"]) for _, d in received]
    assert rows == [d for _, d in received]                              # the stream sends the same rows
    from happyhouse.door import cli
    assert cli.main(["--db", str(srv.db), "--json", "log"]) == 0
    logged = json.loads(capsys.readouterr().out)["events"]
    assert [{**r, "snapshot": bool(r["snapshot"])} for r in logged] == \
        [{**r, "snapshot": bool(r["snapshot"])} for r in rows]
    for query, names in [("?name=barack_obama", ["barack_obama"]), ("?name=nobody", []),
                         ("?since=2h", ["barack_obama", "unknown"]), ("?since=2099-01-01", []),
                         ("?limit=1", ["unknown"])]:
        status, body, _ = get(srv, "/events" + query)
        assert status == 200 and [r["name"] for r in json.loads(body)["events"]] == names, query
    status, body, _ = get(srv, "/events?since=yesterday")
    assert status == 400 and "since 'yesterday'" in json.loads(body)["detail"]
    assert get(srv, "/events?limit=0")[0] == 422


def test_a_client_resumes_with_last_event_id(watching):
    srv, _, received = watching
    first_id = received[0][0]
    replay = EventStream(srv.port, {"Last-Event-ID": str(first_id - 1)})
    try:
        assert [replay.next()[1]["name"], replay.next()[1]["name"]] == ["barack_obama", "unknown"]
    finally:
        replay.close()
    later = EventStream(srv.port, {"Last-Event-ID": str(first_id)})
    try:
        assert later.next()[0] == received[1][0]
    finally:
        later.close()


def test_the_strangers_snapshot_needs_the_token(watching):
    srv, _, received = watching
    obama, stranger = (data for _, data in received)
    status, body, ctype = get(srv, stranger["snapshot"])
    assert status == 200 and ctype == "image/jpeg"
    assert min(cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR).shape[:2]) >= 40
    for token in (None, "wrong-token-" + "y" * 20):
        for path in ("/events", "/events/stream", stranger["snapshot"]):
            status, body, _ = get(srv, path, token)
            assert status == 401 and b"bearer token" in body and b"\xff\xd8" not in body, (path, token)
    status, body, _ = get(srv, f"/events/{obama['id']}/snapshot")
    assert status == 404 and "has no snapshot" in json.loads(body)["detail"]
    assert get(srv, "/events/999999/snapshot")[0] == 404
    assert get(srv, "/events/..%2Ffaces.db/snapshot")[0] in (404, 422)


def test_a_snapshot_outside_the_snapshot_folder_is_never_served(watching):
    """Rows naming other files (the database itself, a ../ path, a symlink in the folder) get 404."""
    srv, _, received = watching
    with sqlite3.connect(srv.db) as conn:
        stored = conn.execute("SELECT snapshot FROM events WHERE id = ?", (received[1][1]["id"],)).fetchone()[0]
    folder = srv.db.parent / "faces.db.snapshots"
    link = folder / "evil.jpg"
    link.symlink_to(srv.db)
    forged = [str(srv.db), f"{folder}/../faces.db", str(link), "/etc/passwd", stored.replace(".jpg", ".db")]
    with sqlite3.connect(srv.db) as conn:
        ids = [conn.execute("INSERT INTO events (time, source, track, name, distance, threshold, frames, box, "
                            "snapshot) VALUES (?, 'forged', 0, 'unknown', 1.0, 0.9, 5, '[0,0,1,1]', ?)",
                            (time.time(), path)).lastrowid for path in forged]
    try:
        for event_id, path in zip(ids, forged):
            status, body, _ = get(srv, f"/events/{event_id}/snapshot")
            assert status == 404 and b"SQLite" not in body and b"root:" not in body, path
        assert get(srv, f"/events/{received[1][1]['id']}/snapshot")[0] == 200
    finally:
        with sqlite3.connect(srv.db) as conn:
            conn.executemany("DELETE FROM events WHERE id = ?", [(i,) for i in ids])
        link.unlink()


def test_no_answer_carries_a_path_on_the_server(watching):
    srv, _, received = watching
    paths = [str(srv.db.parent).encode(), b"faces.db"]
    for path in ["/events", "/events?name=unknown", received[1][1]["snapshot"], "/events/999999/snapshot",
                 f"/events/{received[0][1]['id']}/snapshot", "/health", "/people", "/audit", "/events?since=x"]:
        for token in (TOKEN, None):
            status, body, _ = get(srv, path, token)
            assert not any(p in body for p in paths), (path, token, body[:300])
    replay = EventStream(srv.port, {"Last-Event-ID": "0"})
    try:
        messages = [replay.next()[1] for _ in received]
    finally:
        replay.close()
    assert not any(p.decode() in json.dumps(messages) for p in paths)


def test_sigterm_with_a_stream_open_stops_promptly(watching):
    """Runs last: SIGTERM ends the open stream, stops the watcher (its summary printed) and the server."""
    srv, stream, received = watching
    started = time.monotonic()
    srv.proc.terminate()
    srv.proc.wait(30)
    assert stream.next() is None                                       # the stream ended, no reset
    assert time.monotonic() - started < 15
    log = srv.log.read_text()
    assert "watch: http://127.0.0.1:" in log and "watched" in log and "2 event(s)" in log, log[-2000:]
    assert integrity(srv.db) == "ok"
    with sqlite3.connect(srv.db) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM events ORDER BY id")] == ["barack_obama", "unknown"]
