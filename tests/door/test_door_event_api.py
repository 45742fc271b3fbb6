"""The events over HTTP (happyhouse/door/event_api.py) and the service's privacy helpers, without a model:
the app runs in this process under uvicorn on a loopback port, over a database of random vectors
and events recorded here (as another process's `door watch` would)."""
import contextlib
import http.client
import json
import sqlite3
import threading
import time

import numpy as np
import pytest

from happyhouse.door import face_db, service
from happyhouse.door.events import EventLog

TOKEN = "event-api-token-" + "t" * 16


class NoModel:
    """Stands in for the embedder: the event routes never use it."""
    name = "no-model"


def record(db, name, snapshot=None, t=None):
    with EventLog(db) as log:
        return log.record({"time": time.time() if t is None else t, "source": "cam", "track": 1, "name": name,
                           "distance": 0.5, "threshold": 0.9, "frames": 3, "box": [1, 2, 30, 40]}, snapshot)


@pytest.fixture
def api(tmp_path):
    db = tmp_path / "faces.db"
    with face_db.FaceDB(db) as conn:
        conn.enroll("kian", np.random.default_rng(0).normal(size=(1, 8)).astype(np.float32), "m", ["a"])
    first = record(db, "kian", t=time.time() - 7200)
    second = record(db, "unknown", np.full((48, 40, 3), 200, np.uint8))
    door = service.Door(db, NoModel(), token=TOKEN)
    with serving(door) as port:
        yield door, port, [first, second]


@contextlib.contextmanager
def serving(door):
    """``door``'s app served on a loopback port for the block (yields the port)."""
    server = service.make_server(service.create_app(door, 2**20), door, None)
    sock = service.listen("127.0.0.1", 0)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(20)


def get(port, path, token=TOKEN, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("GET", path, headers={**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def open_stream(port, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request("GET", "/events/stream", headers={"Authorization": f"Bearer {TOKEN}", **(headers or {})})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/event-stream")
    return conn, resp


def next_message(resp) -> tuple[int, dict] | None:
    event_id = None
    while line := resp.readline().decode():
        if line.startswith("id: "):
            event_id = int(line[4:])
        elif line.startswith("data: "):
            return event_id, json.loads(line[6:])
    return None


def test_event_log_cursor_methods(tmp_path):
    db = tmp_path / "faces.db"
    with face_db.FaceDB(db):
        pass
    with EventLog(db) as log:
        assert log.last_id() == 0 and log.after(0) == [] and log.get(1) is None
    ids = [record(db, name, t=t)["id"] for name, t in [("a", 30.0), ("b", 10.0), ("a", 20.0)]]
    with EventLog(db) as log:
        assert [r["id"] for r in log.after(0)] == ids                          # stored order, not time order
        assert [r["id"] for r in log.after(ids[0], name="a")] == [ids[2]]
        assert [r["name"] for r in log.query()] == ["b", "a", "a"]             # time order
        assert [r["time"] for r in log.query(limit=2, newest=True)] == [20.0, 30.0]
        assert [r["time"] for r in log.query(limit=2)] == [10.0, 20.0]
        assert log.get(ids[1])["name"] == "b" and log.last_id() == ids[2]


def test_events_rows_filters_and_the_token(api):
    door, port, (first, second) = api
    status, body = get(port, "/events")
    rows = json.loads(body)["events"]
    assert status == 200 and [r["id"] for r in rows] == [first["id"], second["id"]]
    assert rows[0]["snapshot"] is None and rows[1]["snapshot"] == f"/events/{second['id']}/snapshot"
    assert rows[1]["box"] == [1, 2, 30, 40] and rows[1]["time"] == second["time"]
    assert [r["name"] for r in json.loads(get(port, "/events?since=1h")[1])["events"]] == ["unknown"]
    assert [r["name"] for r in json.loads(get(port, "/events?limit=1")[1])["events"]] == ["unknown"]
    assert [r["name"] for r in json.loads(get(port, "/events?name=kian")[1])["events"]] == ["kian"]
    assert str(door.snapshots) not in body.decode()
    for token in (None, TOKEN[:-1], TOKEN + "x"):
        for path in ("/events", "/events/stream", f"/events/{second['id']}/snapshot"):
            assert get(port, path, token)[0] == 401, (path, token)
    status, body = get(port, f"/events/{second['id']}/snapshot")
    assert status == 200 and body[:2] == b"\xff\xd8"


def test_stream_live_from_the_watcher_and_from_another_process(api):
    door, port, (first, second) = api
    conn, resp = open_stream(port)
    try:
        assert resp.readline() == b": the door's events\n"                    # subscribed
        third = record(door.db_path, "kian")
        door.wakeup.notify()                                                     # as the watcher thread does
        assert next_message(resp) == (third["id"], {**third, "snapshot": None})
        fourth = record(door.db_path, "unknown", np.zeros((40, 40, 3), np.uint8))  # nobody notifies: the poll
        started = time.monotonic()
        event_id, data = next_message(resp)
        assert event_id == fourth["id"] and data["snapshot"] == f"/events/{fourth['id']}/snapshot"
        assert time.monotonic() - started < 5
        door.wakeup.close()                                                      # shutdown ends the stream
        assert next_message(resp) is None
    finally:
        conn.close()


def test_stream_replays_after_last_event_id_and_filters_by_name(api):
    door, port, (first, second) = api
    conn, resp = open_stream(port, {"Last-Event-ID": "0"})
    try:
        assert [next_message(resp)[0], next_message(resp)[0]] == [first["id"], second["id"]]
    finally:
        conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request("GET", "/events/stream?name=unknown", headers={"Authorization": f"Bearer {TOKEN}",
                                                                "Last-Event-ID": "0"})
    try:
        assert next_message(conn.getresponse())[1]["id"] == second["id"]
    finally:
        conn.close()
    assert get(port, "/events/stream", headers={"Last-Event-ID": "x"})[0] == 422


def test_snapshots_only_from_the_snapshot_folder(api, tmp_path):
    door, port, (first, second) = api
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"\xff\xd8 not for clients")
    (door.snapshots / "link.jpg").symlink_to(outside)
    forged = [str(outside), str(door.snapshots / ".." / "outside.jpg"), str(door.snapshots / "link.jpg"),
              str(door.db_path), "relative/../../outside.jpg"]
    with sqlite3.connect(door.db_path) as conn:
        ids = [conn.execute("INSERT INTO events (time, source, track, name, frames, box, snapshot) "
                            "VALUES (1, 'x', 1, 'unknown', 5, '[]', ?)", (p,)).lastrowid for p in forged]
    for event_id in ids:
        status, body = get(port, f"/events/{event_id}/snapshot")
        assert status == 404 and b"not for clients" not in body and str(tmp_path).encode() not in body
    assert get(port, f"/events/{first['id']}/snapshot")[0] == 404              # a known person: no snapshot
    assert get(port, "/events/424242/snapshot")[0] == 404
    assert get(port, "/events/1.5/snapshot")[0] == 422


def test_redact_matched_only_and_require_person(tmp_path):
    door = service.Door(tmp_path / "faces.db", NoModel(), token=TOKEN)
    text = f"{door.db_path}: locked; {door.snapshots}/x.jpg; {door.db_path.resolve()} in {tmp_path}"
    assert str(tmp_path) not in door.redact(text) and "the face database: locked" in door.redact(text)
    assert door.token_ok(TOKEN) and not door.token_ok(TOKEN[:-1]) and not door.token_ok(None)
    payload = {"photo": "p", "faces": [
        {"name": "kian", "decision": {"person": "kian", "reason": "r"},
         "candidates": [{"name": "kian", "distance": 0.3}, {"name": "tian", "distance": 0.9}]},
        {"name": "unknown", "decision": {"person": "tian", "reason": "r"},
         "candidates": [{"name": "tian", "distance": 1.2}]}]}
    known, unknown = service.matched_only(payload)["faces"]
    assert known["candidates"] == [{"name": "kian", "distance": 0.3}] and known["decision"]["person"] == "kian"
    assert unknown["candidates"] == [] and unknown["decision"] == {"reason": "r"}
    assert "tian" not in json.dumps(service.matched_only(payload))
    with face_db.FaceDB(door.db_path) as db:
        db.enroll("kian", np.ones((1, 8), np.float32), "m", ["a"])
        with pytest.raises(face_db.UnknownNameError) as public:
            service.require_person(db, "nobody", trusted=False)
        with pytest.raises(face_db.UnknownNameError) as trusted:
            service.require_person(db, "nobody", trusted=True)
        service.require_person(db, "kian", trusted=False)
    assert str(public.value) == "'nobody' is not enrolled." and "kian" in str(trusted.value)


def test_serve_watch_mistakes_are_one_error_before_the_model(tmp_path, capsys):
    from happyhouse.door import cli
    db = str(tmp_path / "faces.db")
    assert cli.main(["--db", db, "serve", "--port", "0", "--fps", "2", "--on-match", "true"]) == 2
    assert "--fps, --on-match only work with --watch SOURCE" in capsys.readouterr().err
    with face_db.FaceDB(db):
        pass
    assert cli.main(["--db", db, "serve", "--port", "0", "--watch", str(tmp_path)]) == 2
    assert "nobody is enrolled yet" in capsys.readouterr().err
    with face_db.FaceDB(db) as conn:
        conn.enroll("kian", np.ones((1, 8), np.float32), "m", ["a"])
    for source, message in [(str(tmp_path / "none.mp4"), "no such file, folder or camera"),
                            ("ftp://cam/x", "only http://"), (str(tmp_path), "holds no frames")]:
        assert cli.main(["--db", db, "serve", "--port", "0", "--watch", source]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    assert cli.main(["--db", db, "serve", "--port", "0", "--watch", str(tmp_path), "--agree", "9"]) == 2
    assert "--agree 9 must be between 1 and --window 5" in capsys.readouterr().err


def test_a_quiet_stream_sends_keep_alive_comments(api, monkeypatch):
    from happyhouse.door import event_api
    monkeypatch.setattr(event_api, "KEEPALIVE", 0.5)
    door, port, _ = api
    conn, resp = open_stream(port)
    try:
        lines = [resp.readline() for _ in range(4)]
        assert lines[:3] == [b": the door's events\n", b"retry: 3000\n", b"\n"] and lines[3] == b": keep-alive\n"
    finally:
        conn.close()


def test_a_server_without_a_token_answers_loopback_requests_only(tmp_path):
    """No token file: a web page in the door's browser could post a face (a cross-site form needs no
    preflight) or reach the server under its own name (DNS rebinding); both are 403 now."""
    db = tmp_path / "faces.db"
    with face_db.FaceDB(db) as conn:
        conn.enroll("kian", np.ones((1, 8), np.float32), "m", ["a"])
    with serving(service.Door(db, NoModel(), token=None)) as port:
        assert get(port, "/people", token=None)[0] == 200
        assert get(port, "/people", token=None, headers={"Origin": f"http://127.0.0.1:{port}"})[0] == 200
        for headers in ({"Host": "attacker.example"}, {"Origin": "https://evil.example"},
                        {"Host": f"127.0.0.1.evil.example:{port}"}):
            status, body = get(port, "/people", token=None, headers=headers)
            assert status == 403 and b"loopback" in body and b"kian" not in body, headers
    assert service.host_name("[::1]:8000") == "::1" and service.host_name("http://LocalHost:80") == "localhost"
