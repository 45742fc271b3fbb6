"""happyhouse.door.events (the access log, snapshots, pruning, `door log`) and happyhouse.door.hooks
(--on-match, --webhook with retries). No model: the database holds random vectors."""
import json
import os
import sqlite3
import stat
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from happyhouse.door import cli
from happyhouse.door import face_db
from happyhouse.door.events import SNAPSHOT_NAME, EventLog, parse_since
from happyhouse.door.hooks import HookSettings, Hooks, check_webhook


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def db_path(tmp_path):
    path = tmp_path / "faces.db"
    with face_db.FaceDB(path) as db:
        db.enroll("kian", np.random.default_rng(0).normal(size=(1, 8)).astype(np.float32), "m", ["a"])
    return path


def event(name="kian", t=None, track=1):
    return {"time": time.time() if t is None else t, "source": "cam", "track": track, "name": name,
            "distance": 0.5, "threshold": 0.97, "frames": 3, "box": [1, 2, 3, 4]}


def test_record_query_and_privacy(db_path, tmp_path):
    snaps = tmp_path / "snaps"
    snaps.mkdir(mode=0o755)
    with EventLog(db_path, snaps) as log:
        a = log.record(event("kian", t=1000.0))
        face = np.zeros((40, 30, 3), np.uint8)
        face[..., 0] = 255                                    # red, as RGB
        b = log.record(event("unknown", t=2000.0, track=2), snapshot=face)
        with sqlite3.connect(db_path) as other:               # committed: another connection sees both
            assert other.execute("SELECT name, track FROM events ORDER BY id").fetchall() == \
                [("kian", 1), ("unknown", 2)]
        assert [r["name"] for r in log.query()] == ["kian", "unknown"]
        assert [r["id"] for r in log.query(name="unknown")] == [b["id"]]
        assert [r["id"] for r in log.query(since=1500.0)] == [b["id"]]
        assert a["snapshot"] is None and log.query()[0]["box"] == [1, 2, 3, 4]
    snapshot = tmp_path / "snaps" / b["snapshot"].rsplit("/", 1)[1]
    assert mode(snaps) == 0o700 and mode(snapshot) == 0o600 and mode(db_path) == 0o600
    import cv2
    assert cv2.imread(str(snapshot))[20, 15, 2] > 200            # stored as a red picture (BGR on disk)


def test_prune_removes_old_events_and_their_snapshots(db_path, tmp_path):
    now = time.time()
    with EventLog(db_path) as log:
        old = log.record(event("unknown", t=now - 10 * 86400), snapshot=np.zeros((8, 8, 3), np.uint8))
        new = log.record(event("unknown", t=now), snapshot=np.zeros((8, 8, 3), np.uint8))
        orphan = log.snapshots / "20261120T101010-0123abcd.jpg"  # a process killed between file and row
        users = log.snapshots / "holiday.jpg"                   # a user's picture in a --snapshots folder
        for path in (orphan, users):
            path.write_bytes(b"x")
            os.utime(path, (now - 10 * 86400,) * 2)
        assert log.prune(keep_days=7) == 1
        assert [r["id"] for r in log.query()] == [new["id"]]
    assert not (tmp_path / old["snapshot"]).exists() and not orphan.exists()
    assert (tmp_path / new["snapshot"]).exists() and users.exists()  # it was deleted before
    assert SNAPSHOT_NAME.fullmatch(Path(new["snapshot"]).name)


def test_prune_deletes_nothing_outside_its_folder_and_needs_a_positive_age(db_path, tmp_path, capsys):
    """A copied database's rows name the first one's snapshots: `door log --keep-days -1` on the copy
    emptied both folders (exit 0); a negative or zero age deleted every event."""
    import shutil
    now = time.time()
    with EventLog(db_path) as log:
        first = log.record(event("unknown", t=now - 10 * 86400), snapshot=np.zeros((8, 8, 3), np.uint8))
    copy = tmp_path / "copy.db"
    shutil.copy(db_path, copy)
    kept = tmp_path / first["snapshot"]
    with EventLog(copy) as log:
        assert log.prune(keep_days=7) == 1                       # the row goes, the first folder's file stays
        with pytest.raises(ValueError, match="positive number of days"):
            log.prune(keep_days=-1)
    assert kept.exists()
    for days in ("-1", "0", "nan"):
        assert cli.main(["--db", str(db_path), "log", "--keep-days", days]) == 2
        assert "--keep-days must be a positive number of days" in capsys.readouterr().err
    with EventLog(db_path) as log:
        assert len(log.query()) == 1


def test_parse_since():
    assert parse_since("2h", now=10_000.0) == 10_000.0 - 7200
    assert parse_since("2026-12-04T00:00") == parse_since("2026-12-04T00:00+00:00")
    with pytest.raises(ValueError, match="an age like"):
        parse_since("yesterday")


def test_door_log_command(db_path, capsys):
    now = time.time()
    with EventLog(db_path) as log:
        log.record(event("kian", t=now - 3 * 86400))
        log.record(event("unknown", t=now - 60, track=2))
    assert cli.main(["--db", str(db_path), "log", "--json", "--since", "1h"]) == 0
    rows = json.loads(capsys.readouterr().out)["events"]
    assert [(r["name"], r["track"]) for r in rows] == [("unknown", 2)]
    assert cli.main(["--db", str(db_path), "log", "--name", "kian"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "\tkian\t0.500\ttrack 1\tcam" in out
    assert cli.main(["--db", str(db_path), "log", "--keep-days", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pruned"] == 1
    assert cli.main(["--db", str(db_path), "log", "--since", "last week"]) == 2
    assert "an age like" in capsys.readouterr().err


def test_log_before_any_event(db_path, capsys):
    assert cli.main(["--db", str(db_path), "log"]) == 0
    assert capsys.readouterr().out.strip() == "no events"


# -- hooks --------------------------------------------------------------------------------
def test_on_match_gets_the_decision_in_its_environment_only(tmp_path):
    out = tmp_path / "env.json"
    script = tmp_path / "hook.py"
    script.write_text("import json, os, sys\n"
                      "json.dump({k: v for k, v in os.environ.items() if k.startswith('DOOR_')}, "
                      "open(sys.argv[1], 'w'))\n")
    messages = []
    hooks = Hooks(HookSettings(on_match=f"{sys.executable} {script} {out}"), log=messages.append)
    hostile = event("kian") | {"source": "cam $(touch PWNED) `touch PWNED2`; touch PWNED3"}
    hooks.submit(event("unknown"))                            # no command for an unknown visitor
    hooks.submit(hostile)
    hooks.close()
    env = json.loads(out.read_text())
    assert env["DOOR_NAME"] == "kian" and env["DOOR_SOURCE"] == hostile["source"]
    assert json.loads(env["DOOR_EVENT"]) == hostile and env["DOOR_DISTANCE"] == "0.5"
    assert not any(tmp_path.glob("PWNED*")) and messages == []


class Flaky(BaseHTTPRequestHandler):
    """Answers 500 to the first ``fail`` POSTs, then 204; keeps the bodies."""
    fail, bodies = 2, []

    def do_POST(self):
        self.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(500 if len(self.bodies) <= self.fail else 204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhook_retried_until_it_succeeds():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    messages = []
    hooks = Hooks(HookSettings(webhook=f"http://127.0.0.1:{server.server_port}/door", backoff=0.01),
                  log=messages.append)
    hooks.submit(event("unknown"))
    hooks.close()
    server.shutdown()
    assert len(Flaky.bodies) == 3 and Flaky.bodies[-1]["name"] == "unknown"
    assert hooks.failures == 2 and all("retrying" in m for m in messages)


def test_dead_webhook_is_logged_and_given_up():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]                             # nothing listens there once closed
    order, submitted = [], threading.Event()

    def log(message):                          # the hook's thread waits until submit has returned
        submitted.wait(10)
        order.append(message)
    hooks = Hooks(HookSettings(webhook=f"http://127.0.0.1:{port}/", retries=2, backoff=0.01), log=log)
    hooks.submit(event())
    order.append("submitted")                  # first: submit never waits for the hook (else the log came first)
    submitted.set()
    hooks.close()
    assert order[0] == "submitted" and len(order) == 4 and order[-1].endswith("giving up.")


class Hanging(BaseHTTPRequestHandler):
    """Never answers in time: a webhook server that is down in the slow way."""

    def do_POST(self):
        time.sleep(3)

    def log_message(self, *args):
        pass


def test_a_hanging_webhook_never_holds_back_the_lock_command(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hanging)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    opened = tmp_path / "opened"
    hooks = Hooks(HookSettings(on_match=f"{sys.executable} -c \"open('{opened}', 'w')\"",
                               webhook=f"http://127.0.0.1:{server.server_port}/door", timeout=2, retries=0),
                  log=lambda message: None)
    hooks.submit(event("unknown"))   # a stranger first: its webhook hangs
    hooks.submit(event("kian"))
    deadline = time.monotonic() + 1.5
    while not opened.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert opened.exists()   # the door opened while the webhook was still waiting for its answer
    hooks.close(wait=5)
    server.shutdown()


def relay(tmp_path, **settings) -> tuple[Hooks, Path, list]:
    """Hooks whose command notes each run's DOOR_NAME in a file and fails for alice (a relay that jams)."""
    runs = tmp_path / "runs.txt"
    script = (f"import os, sys; open({str(runs)!r}, 'a').write(os.environ['DOOR_NAME'] + chr(10)); "
              "sys.exit(os.environ['DOOR_NAME'] == 'alice')")
    messages = []
    return Hooks(HookSettings(on_match=f"{sys.executable} -c \"{script}\"", **settings), log=messages.append), runs, messages


def test_a_failing_unlock_is_not_retried_while_a_newer_decision_waits(tmp_path):
    """The audit's relay: alice's unlock failing held bob's back by 7 s of retries, then opened late."""
    hooks, runs, messages = relay(tmp_path, backoff=0.2, command_max_age=60)
    hooks.submit(event("alice"))
    hooks.submit(event("bob"))
    hooks.close(wait=20)
    assert runs.read_text().split() == ["alice", "bob"]
    assert "a newer decision is waiting" in messages[0]


def test_a_failing_unlock_is_not_retried_past_its_age(tmp_path):
    hooks, runs, messages = relay(tmp_path, backoff=0.2, command_max_age=0.1)
    hooks.submit(event("alice"))
    hooks.close(wait=20)
    assert runs.read_text().split() == ["alice"] and "after its decision" in messages[0]


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://host/x", "http://", "javascript:alert(1)"])
def test_webhook_url_checked(url):
    with pytest.raises(ValueError, match="http:// or https://"):
        check_webhook(url)
