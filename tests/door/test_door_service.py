"""The door's HTTP service: a real server process on a free loopback port, spoken to over HTTP.

One server (and one model load) serves the whole module; the kill -9 test comes last, as it
kills that server in the middle of an enrolment (face_db's test hook holds the transaction open).
Requests are made with the standard library (http.client, raw sockets for chunked uploads).
"""
import http.client
import json
import os
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from happyhouse.door import cli
from test_door_cli import png_claiming

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token-" + "x" * 20
LIMIT_MB = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A ``serve`` process: its port, database, log; ``call`` makes one HTTP request."""

    def __init__(self, folder: Path, python_code: str | None = None, extra: tuple = ()):
        self.db, self.port, self.log = folder / "faces.db", free_port(), folder / "server.log"
        (folder / "token").write_text(TOKEN + "\n")
        (folder / "token").chmod(0o600)
        argv = ["serve", "--port", str(self.port), "--db", str(self.db), "--token-file", str(folder / "token"),
                "--max-upload-mb", str(LIMIT_MB), *extra]
        cmd = ([sys.executable, "-m", "fr_utils", *argv] if python_code is None else
               [sys.executable, "-c", python_code, *argv])
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if self.call("GET", "/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        pytest.fail(f"the server did not answer /health in 180 s:\n{self.log.read_text()[-3000:]}")

    def call(self, method, path, fields=(), token=None, timeout=120):
        """One request; ``fields`` are (name, str) or (name, (filename, bytes)). -> (status, JSON, headers)."""
        body, ctype = multipart(fields) if fields else (b"", None)
        headers = {"Content-Type": ctype} if ctype else {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if len(body) > 2**20:  # the server may answer (413) and close before the body is sent
            return self.send_oversized(method, path, body, headers, timeout)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body if method != "GET" else None, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, json.loads(raw) if raw[:1] in (b"{", b"[") else raw, dict(resp.getheaders())
        finally:
            conn.close()

    def send_oversized(self, method, path, body, headers, timeout, attempts=5):
        """A request whose body may be refused early: the body goes in pieces until the server's answer
        is readable, then the answer is read (with http.client, an early answer can be lost to a reset).
        The server closes with part of our body unread, so its reset can still discard the answer's body
        after its head arrived: then the same request is sent again (at most ``attempts`` times)."""
        for _ in range(attempts):
            reply = self.send_once(method, path, body, headers, timeout)
            if reply is not None and not isinstance(reply[1], bytes):
                break
        assert reply is not None, f"no answer to {method} {path} in {attempts} attempts"
        return reply

    def send_once(self, method, path, body, headers, timeout):
        """One try: (status, the JSON answer, or the raw bytes when it is not whole JSON, headers);
        None when not even a status line came back."""
        head = "".join(f"{k}: {v}\r\n" for k, v in {**headers, "Content-Length": len(body)}.items())
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(f"{method} {path} HTTP/1.1\r\nHost: door\r\nConnection: close\r\n{head}\r\n".encode())
            try:
                for start in range(0, len(body), 2**16):
                    if select.select([s], [], [], 0)[0]:
                        break
                    s.sendall(body[start:start + 2**16])
            except (BrokenPipeError, ConnectionResetError):
                pass
            reply = b""
            try:
                while data := s.recv(65536):
                    reply += data
            except ConnectionResetError:  # the server closed with our unread body: what came before stays
                pass
        status_line, _, rest = reply.partition(b"\r\n")
        if not status_line.startswith(b"HTTP/"):
            return None
        head, _, raw = rest.partition(b"\r\n\r\n")
        fields = dict(line.decode().split(": ", 1) for line in head.split(b"\r\n") if b": " in line)
        try:
            return int(status_line.split()[1]), json.loads(raw), fields
        except ValueError:
            return int(status_line.split()[1]), raw, fields

    def people(self) -> dict:
        status, body, _ = self.call("GET", "/people", token=TOKEN)
        assert status == 200, body
        return {p["name"]: sum(m["embeddings"] for m in p["models"].values()) for p in body["people"]}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def multipart(fields) -> tuple[bytes, str]:
    """multipart/form-data body and its Content-Type for (name, value) pairs (value str or (filename, bytes))."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields:
        if isinstance(value, tuple):
            head = f'Content-Disposition: form-data; name="{name}"; filename="{value[0]}"\r\n' \
                   "Content-Type: application/octet-stream\r\n\r\n"
            data = value[1]
        else:
            head, data = f'Content-Disposition: form-data; name="{name}"\r\n\r\n', value.encode()
        parts.append(f"--{boundary}\r\n{head}".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def photo(images: Path, name: str) -> tuple[str, bytes]:
    return name, (images / name).read_bytes()


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


#: Starts ``serve`` with face_db's test hook: an enrolment of "interrupted" writes its rows,
#: touches a flag file and waits before COMMIT, so the test can kill -9 the server right there.
KILLABLE = """
import pathlib, sys, time
from happyhouse.door import face_db
from happyhouse.door.cli import main
def pause(db, name):
    if name == "interrupted":
        pathlib.Path(db.path).with_suffix(".writing").touch()
        time.sleep(600)
face_db._enroll_hook = pause
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def server(course_images, tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("service"), python_code=KILLABLE)
    status, body, _ = srv.call("POST", "/people/younes", [("photo", photo(course_images, "younes.jpg"))], TOKEN)
    assert status == 201, body
    yield srv
    srv.stop()


def test_health(server):
    status, body, _ = server.call("GET", "/health")
    assert status == 200
    assert body["status"] == "ok" and body["model"] == cli.DEFAULT_MODEL and body["people"] >= 1


def test_openapi_docs(server):
    status, body, _ = server.call("GET", "/docs")
    assert status == 200 and b"swagger" in body.lower()
    status, spec, _ = server.call("GET", "/openapi.json")
    assert {"/health", "/identify", "/verify", "/people", "/people/{name}"} <= set(spec["paths"])


@pytest.mark.parametrize("token", [None, "wrong-token", TOKEN + "x", TOKEN[:-1]])
def test_people_endpoints_need_the_token(server, course_images, token):
    before = server.people()
    for method, path, fields in [("GET", "/people", ()), ("DELETE", "/people/younes", ()),
                                 ("POST", "/people/intruder", [("photo", photo(course_images, "kian.jpg"))])]:
        status, body, headers = server.call(method, path, fields, token)
        assert status == 401, (method, path, body)
        assert "bearer token" in body["detail"] and headers.get("www-authenticate") == "Bearer"
    assert server.people() == before


def test_identify_and_verify_answer_as_the_cli_does(server, course_images, capsys):
    status, body, _ = server.call("POST", "/identify", [("photo", photo(course_images, "camera_0.jpg"))], TOKEN)
    assert status == 200 and body["faces"][0]["name"] == "younes"
    code = cli.main(["--db", str(server.db), "--json", "identify", str(course_images / "camera_0.jpg")])
    from_cli = json.loads(capsys.readouterr().out)
    assert code == 0 and body["photo"] == "camera_0.jpg"
    assert {**body, "photo": None} == {**from_cli, "photo": None}

    status, body, _ = server.call("POST", "/verify", [("name", "younes"), ("photo", photo(course_images, "camera_0.jpg"))])
    assert status == 200 and body["match"] is True and body["distance"] < body["threshold"]
    status, body, _ = server.call("POST", "/verify", [("name", "younes"), ("photo", photo(course_images, "camera_2.jpg"))])
    assert status == 200 and body["match"] is False and body["distance"] >= body["threshold"]


def test_enrol_list_remove(server, course_images):
    status, body, _ = server.call("POST", "/people/bertrand", [("photo", photo(course_images, "bertrand.jpg")),
                                                              ("photo", photo(course_images, "camera_1.jpg"))], TOKEN)
    assert status == 201 and body["enrolled"] == "bertrand" and body["embeddings"] == 2
    assert server.people()["bertrand"] == 2
    status, body, _ = server.call("POST", "/identify", [("photo", photo(course_images, "camera_3.jpg"))])
    assert body["faces"][0]["name"] == "bertrand"
    status, body, _ = server.call("DELETE", "/people/bertrand", token=TOKEN)
    assert status == 200 and body == {"removed": "bertrand", "embeddings": 2}
    assert "bertrand" not in server.people()


def test_without_the_token_no_other_name_is_told(server, course_images, faces_data):
    """Issue 23's privacy: a client without the token learns the name it asked about or the one its
    face matched, never anyone else enrolled."""
    assert server.call("POST", "/people/tian", [("photo", photo(course_images, "tian.jpg"))], TOKEN)[0] == 201
    try:
        status, body, _ = server.call("POST", "/verify", [("name", "nobody"), ("photo", photo(course_images, "camera_0.jpg"))])
        assert (status, body) == (404, {"detail": "'nobody' is not enrolled."})
        status, body, _ = server.call("POST", "/verify", [("name", "nobody"), ("photo", photo(course_images, "camera_0.jpg"))],
                                      "wrong-token-" + "z" * 20)
        assert (status, body) == (404, {"detail": "'nobody' is not enrolled."})
        full = server.call("POST", "/identify", [("photo", photo(course_images, "camera_0.jpg"))], TOKEN)[1]
        assert {c["name"] for c in full["faces"][0]["candidates"]} >= {"younes", "tian"}      # who else is there
        status, body, _ = server.call("POST", "/identify", [("photo", photo(course_images, "camera_0.jpg"))])
        face = body["faces"][0]
        assert status == 200 and face["name"] == "younes" and face["decision"]["person"] == "younes"
        assert face["candidates"] == [c for c in full["faces"][0]["candidates"] if c["name"] == "younes"]
        stranger = ("stranger.jpg", (faces_data / "people" / "paul_rudd" / "1.jpg").read_bytes())
        full = server.call("POST", "/identify", [("photo", stranger)], TOKEN)[1]["faces"][0]
        assert full["name"] == "unknown" and full["candidates"] and "person" in full["decision"]
        status, body, _ = server.call("POST", "/identify", [("photo", stranger)])
        face = body["faces"][0]
        assert face["name"] == "unknown" and face["candidates"] == [] and "person" not in face["decision"]
        assert face["distance"] == full["distance"] and face["decision"]["reason"] == full["decision"]["reason"]
    finally:
        assert server.call("DELETE", "/people/tian", token=TOKEN)[0] == 200


def test_no_answer_carries_the_database_path(server, course_images):
    """Every route, its success and its errors, with and without the token: no path on the server."""
    folder = str(server.db.parent)
    cam, andrew = photo(course_images, "camera_0.jpg"), photo(course_images, "andrew.jpg")
    calls = [("GET", "/health", ()), ("GET", "/people", ()), ("GET", "/audit", ()), ("GET", "/events", ()),
             ("POST", "/identify", [("photo", cam)]), ("POST", "/identify", [("photo", photo(course_images, "cat.jpg"))]),
             ("POST", "/identify", [("photo", ("notes.txt", b"not a picture"))]),
             ("POST", "/verify", [("name", "younes"), ("photo", cam)]),
             ("POST", "/verify", [("name", "nobody"), ("photo", cam)]),
             ("POST", "/people/paths?check=true", [("photo", andrew)]),
             ("POST", "/people/paths", [("photo", andrew)]),                        # 201
             ("POST", "/people/paths", [("photo", andrew)]),                        # 409, already enrolled
             ("POST", "/people/other", [("photo", andrew)]),                        # 409, same photo
             ("POST", "/people/blurred", [("photo", blurred_photo(course_images, "kian.jpg"))]),   # 422
             ("DELETE", "/people/paths", ()), ("DELETE", "/people/paths", ()),      # 200, then 404
             ("GET", "/events/1/snapshot", ())]
    statuses = set()
    for method, path, fields in calls:
        for token in (TOKEN, None):
            status, body, _ = server.call(method, path, fields, token)
            statuses.add(status)
            text = body.decode(errors="replace") if isinstance(body, bytes) else json.dumps(body)
            assert folder not in text and "faces.db" not in text, (method, path, token, text[:300])
    assert {200, 201, 400, 401, 404, 409, 422} <= statuses
    assert not {"paths", "other", "blurred", "nobody"} & set(server.people())


def blurred_photo(images: Path, name: str) -> tuple[str, bytes]:
    """A course photo blurred (in memory, never saved) until the sharpness check refuses it."""
    import cv2
    import numpy as np
    img = cv2.imdecode(np.frombuffer((images / name).read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    return f"blurred_{name}", cv2.imencode(".png", cv2.GaussianBlur(img, (0, 0), 2))[1].tobytes()


def test_enrolment_checks_answer_with_their_reasons(server, course_images):
    """Issue 22 over HTTP: ?check=true stores nothing, a failing photo gets 422 with every photo's checks,
    ?force=true stores it with warnings, /audit reports, and /identify says how it decided."""
    soft = blurred_photo(course_images, "kian.jpg")
    status, body, _ = server.call("POST", "/people/kian?check=true", [("photo", soft)], TOKEN)
    assert status == 200, body   # nothing created
    assert body["stored"] is False and body["photos"][0]["problems"][0]["check"] == "sharpness"
    status, body, _ = server.call("POST", "/people/kian", [("photo", soft)], TOKEN)
    assert status == 422 and "clearer, frontal, colour photo" in body["detail"]
    assert body["checks"][0]["photo"] == "upload 'blurred_kian.jpg'" and not body["checks"][0]["ok"]
    assert "kian" not in server.people()
    status, body, _ = server.call("POST", "/people/kian?force=true", [("photo", soft)], TOKEN)
    assert status == 201 and body["warnings"][0]["problems"][0]["check"] == "sharpness"
    status, body, _ = server.call("GET", "/audit", token=TOKEN)
    assert status == 200 and {"name": "kian"} == {k: v for k, v in body["forced"][0].items() if k == "name"}
    status, body, _ = server.call("POST", "/identify", [("photo", soft)], TOKEN)
    face = body["faces"][0]
    assert face["name"] == "unknown" and face["decision"]["person"] == "kian"
    assert "failed the enrolment checks" in face["decision"]["reason"]
    assert server.call("DELETE", "/people/kian", token=TOKEN)[0] == 200


def test_a_server_with_an_index_follows_enrolments_and_removals(course_images, tmp_path):
    """--search ivf: the index is built at start, rebuilt after a large change and updated in place
    after small ones (enrolments through the server, a removal by another process)."""
    folder = tmp_path / "ivf"
    folder.mkdir()
    assert cli.main(["--db", str(folder / "faces.db"), "enroll", "younes", str(course_images / "younes.jpg")]) == 0
    srv = Server(folder, extra=("--search", "ivf"))
    try:
        def who(picture):
            status, body, _ = srv.call("POST", "/identify", [("photo", photo(course_images, picture))])
            assert status == 200, body
            return body["faces"][0]["name"]

        def enrol(name, *pictures):
            status, body, _ = srv.call("POST", f"/people/{name}", [("photo", photo(course_images, p)) for p in pictures],
                                       TOKEN)
            assert status == 201, body
        assert who("camera_0.jpg") == "younes"                       # the index built at start
        for name in ("andrew", "arnaud", "benoit", "dan", "felix", "kevin", "kian", "sebastiano", "tian"):
            enrol(name + "?force=true" * (name == "kian"), f"{name}.jpg")   # 9 rows on 1: rebuilt; kian's a hub
        assert who("camera_0.jpg") == "younes"
        enrol("bertrand", "bertrand.jpg", "camera_1.jpg")            # 2 rows on 10: in place
        assert who("camera_3.jpg") == "bertrand"
        assert cli.main(["--db", str(srv.db), "remove", "bertrand"]) == 0      # another process
        assert who("camera_3.jpg") != "bertrand" and who("camera_0.jpg") == "younes"
        assert srv.call("DELETE", "/people/younes", token=TOKEN)[0] == 200
        assert who("camera_0.jpg") != "younes"
    finally:
        srv.stop()


def _is_up(server) -> bool:
    return server.call("GET", "/health")[0] == 200


@pytest.mark.parametrize("method, path, fields, status, words", [
    ("POST", "/identify", [("photo", ("notes.txt", b"not a picture"))], 400, ["upload 'notes.txt'", "not an image"]),
    ("POST", "/identify", [("photo", ("half.jpg", b"\xff\xd8\xff\xe0" + b"\0" * 200))], 400, ["upload 'half.jpg'"]),
    # a few hundred bytes that would decode to 90 MB: refused before decoding, under the CLI's own cap
    ("POST", "/identify", [("photo", ("wide.png", png_claiming(6000, 5000)))], 400,
     ["upload 'wide.png'", "more than 25,000,000 pixels"]),
    ("POST", "/identify", [("photo", "cat.jpg")], 400, ["no face found"]),
    ("POST", "/verify", [("name", "nobody"), ("photo", "camera_0.jpg")], 404, ["'nobody' is not enrolled", "younes"]),
    ("DELETE", "/people/nobody", [], 404, ["'nobody' is not enrolled"]),
    ("POST", "/people/younes", [("photo", "andrew.jpg")], 409, ["already enrolled"]),
    ("POST", "/people/someone", [("photo", "younes.jpg")], 409, ["already enrolled as 'younes'"]),
    ("POST", "/people/two", [("photo", "andrew.jpg"), ("photo", "andrew.jpg")], 409, ["same photo"]),
    ("POST", "/identify", [], 422, ["missing field 'photo'", "(curl -F photo=@face.jpg)"]),
    ("POST", "/verify", [("photo", "camera_0.jpg")], 422, ["missing field 'name'", "(curl -F name=NAME)"]),
    ("POST", "/verify", [("name", "a\u202eb"), ("photo", "camera_0.jpg")], 400, ["invalid name"]),
    ("POST", "/people/someone", [("name", "x")], 422, ["missing field 'photo'"]),
    ("POST", "/identify", [("photo", ("big.jpg", b"\xff" * (LIMIT_MB * 2**20 + 1)))], 413, ["limit of 1 MiB"]),
])
def test_errors_are_specific_and_change_nothing(server, course_images, method, path, fields, status, words):
    fields = [(k, photo(course_images, v) if k == "photo" and isinstance(v, str) else v) for k, v in fields]
    before = server.people()
    got, body, _ = server.call(method, path, fields, token=TOKEN)
    assert got == status, body
    assert isinstance(body, dict) and all(w in body["detail"] for w in words), body
    assert server.people() == before and integrity(server.db) == "ok"
    assert _is_up(server)


def test_upload_limit_is_checked_while_the_body_streams_in(server):
    """A chunked upload (no Content-Length) is cut off soon after the limit, not read to its end."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as s:
        s.sendall(b"POST /identify HTTP/1.1\r\nHost: door\r\nTransfer-Encoding: chunked\r\n"
                  b"Content-Type: multipart/form-data; boundary=bb\r\n\r\n")

        def chunk(data):
            s.sendall(b"%x\r\n" % len(data) + data + b"\r\n")
        chunk(b'--bb\r\nContent-Disposition: form-data; name="photo"; filename="endless.jpg"\r\n\r\n')
        sent, piece, reply = 0, b"\xff" * 2**16, b""
        try:
            while sent < 500 * 2**20 and not select.select([s], [], [], 0)[0]:
                chunk(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
        while b"\r\n\r\n" not in reply:
            data = s.recv(65536)
            if not data:
                break
            reply += data
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert sent < 64 * 2**20, f"the server read {sent / 2**20:.0f} MiB before refusing"
    assert _is_up(server)


def test_server_survives_a_client_that_hangs_up_mid_upload(server):
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"POST /identify HTTP/1.1\r\nHost: door\r\nContent-Length: 500000\r\n"
                  b"Content-Type: multipart/form-data; boundary=bb\r\n\r\n--bb\r\n" + b"x" * 1000)
    assert _is_up(server)
    assert server.call("GET", "/people", token=TOKEN)[0] == 200


def test_concurrent_enrolments_and_identifications(server, course_images):
    newcomers = ["andrew", "arnaud", "benoit", "dan"]

    def enrol(name):
        return server.call("POST", f"/people/{name}", [("photo", photo(course_images, f"{name}.jpg"))], TOKEN)

    def identify(_):
        return server.call("POST", "/identify", [("photo", photo(course_images, "camera_0.jpg"))])

    with ThreadPoolExecutor(8) as pool:
        enrolled = pool.map(enrol, newcomers)
        identified = pool.map(identify, range(4))
        enrolled, identified = list(enrolled), list(identified)
    assert [r[0] for r in enrolled] == [201] * 4, enrolled
    assert all(r[0] == 200 and r[1]["faces"][0]["name"] == "younes" for r in identified)
    people = server.people()
    assert all(people[n] == 1 for n in newcomers) and people["younes"] == 1
    assert integrity(server.db) == "ok"
    status, body, _ = server.call("POST", "/identify", [("photo", photo(course_images, "camera_4.jpg"))])
    assert body["faces"][0]["name"] == "dan"   # the shared gallery saw the other connections' commits


def test_serve_refuses_bad_setups(tmp_path, capsys):
    db = str(tmp_path / "faces.db")
    assert cli.main(["--db", db, "serve", "--host", "0.0.0.0"]) == 2
    assert "without --token-file" in capsys.readouterr().err
    (tmp_path / "short").write_text("abc")
    assert cli.main(["--db", db, "serve", "--token-file", str(tmp_path / "short")]) == 2
    assert "at least 16 characters" in capsys.readouterr().err
    assert cli.main(["--db", db, "serve", "--token-file", str(tmp_path / "missing")]) == 2
    assert "cannot read it" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert cli.main(["--db", db, "serve", "--port", str(taken.getsockname()[1])]) == 2
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
    assert not (tmp_path / "faces.db").exists()


def test_kill_9_during_an_enrolment_leaves_a_consistent_database(server, course_images):
    """Runs last: it kills the module's server in the middle of an enrolment's transaction."""
    before = server.people()
    flag = server.db.with_suffix(".writing")
    outcome = []

    def enrol():
        try:
            outcome.append(server.call("POST", "/people/interrupted", [("photo", photo(course_images, "felix.jpg")),
                                                                       ("photo", photo(course_images, "kevin.jpg"))],
                                       TOKEN))
        except OSError as err:  # the server died under the request
            outcome.append(err)
    request = threading.Thread(target=enrol, daemon=True)
    request.start()
    deadline = time.monotonic() + 120
    while not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert flag.exists(), "the enrolment never reached its write"
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(10)
    request.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], OSError), outcome

    assert integrity(server.db) == "ok"
    with sqlite3.connect(server.db) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM people ORDER BY name")]
        rows = conn.execute("SELECT count(*) FROM embeddings").fetchone()[0]
        orphans = conn.execute("SELECT count(*) FROM embeddings WHERE person_id NOT IN "
                               "(SELECT id FROM people)").fetchone()[0]
    assert names == sorted(before) and "interrupted" not in names     # absent, not half there
    assert rows == sum(before.values()) and orphans == 0
