"""`python -m fr_utils fetch` against a local HTTP server on 127.0.0.1."""
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest

import happyhouse.data

FILES = {"images/a.jpg": b"A" * 5000, "images/b.jpg": b"B" * 3000, "weights/x_w.csv": b"1,2,3\n" * 100}


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves FILES (plus a corrupted copy) with Range support; can drop a connection once."""
    served: dict = {}
    drop_once: set = set()
    requests: list = []

    def do_GET(self):  # noqa: N802
        name = self.path.lstrip("/")
        self.requests.append((name, self.headers.get("Range")))
        if name not in self.served:
            self.send_error(404)
            return
        body = self.served[name]
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if name in self.drop_once:
            self.drop_once.discard(name)
            self.wfile.write(body[start:start + 100])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    RangeHandler.served = dict(FILES)
    RangeHandler.served["corrupt.jpg"] = b"not the right bytes"
    RangeHandler.drop_once = set()
    RangeHandler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def write_manifest(tmp_path, base, entries):
    lines = ["# test manifest"] + [f"{rel}\t{ck}\t{base}/{src}" for rel, ck, src in entries]
    path = tmp_path / "manifest.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_fetch_downloads_and_verifies_every_file(tmp_path, server):
    entries = [(rel, sha(data), rel) for rel, data in FILES.items()]
    manifest = write_manifest(tmp_path, server, entries)
    report = happyhouse.data.fetch(tmp_path / "dest", manifest=manifest)
    assert sorted(report["ok"]) == sorted(FILES)
    for rel, data in FILES.items():
        assert (tmp_path / "dest" / rel).read_bytes() == data
    again = happyhouse.data.fetch(tmp_path / "dest", manifest=manifest)
    assert sorted(again["skipped"]) == sorted(FILES) and not again["ok"]


def test_corrupted_download_is_rejected_and_deleted(tmp_path, server):
    manifest = write_manifest(tmp_path, server, [("images/c.jpg", sha(b"the real bytes"), "corrupt.jpg"),
                                                 ("images/a.jpg", sha(FILES["images/a.jpg"]), "images/a.jpg")])
    report = happyhouse.data.fetch(tmp_path / "dest", manifest=manifest)
    assert "checksum mismatch" in report["failed"]["images/c.jpg"]
    assert report["ok"] == ["images/a.jpg"]
    assert not (tmp_path / "dest/images/c.jpg").exists()
    assert not (tmp_path / "dest/images/c.jpg.part").exists()


def test_partial_download_resumes_with_a_range_request(tmp_path, server):
    data = FILES["images/a.jpg"]
    (tmp_path / "dest/images").mkdir(parents=True)
    (tmp_path / "dest/images/a.jpg.part").write_bytes(data[:1234])
    manifest = write_manifest(tmp_path, server, [("images/a.jpg", sha(data), "images/a.jpg")])
    report = happyhouse.data.fetch(tmp_path / "dest", manifest=manifest)
    assert report["ok"] == ["images/a.jpg"]
    assert (tmp_path / "dest/images/a.jpg").read_bytes() == data
    assert ("images/a.jpg", "bytes=1234-") in RangeHandler.requests


def test_dropped_connection_is_retried_and_resumed(tmp_path, server):
    data = FILES["images/b.jpg"]
    RangeHandler.drop_once = {"images/b.jpg"}
    manifest = write_manifest(tmp_path, server, [("images/b.jpg", sha(data), "images/b.jpg")])
    report = happyhouse.data.fetch(tmp_path / "dest", manifest=manifest)
    assert report["ok"] == ["images/b.jpg"], report
    assert (tmp_path / "dest/images/b.jpg").read_bytes() == data
    assert len(RangeHandler.requests) >= 2


def test_missing_source_file_is_reported(tmp_path, server):
    manifest = write_manifest(tmp_path, server, [("images/z.jpg", sha(b"z"), "nowhere.jpg")])
    report = happyhouse.data.fetch(tmp_path / "dest", manifest=manifest)
    assert "HTTP 404" in report["failed"]["images/z.jpg"]


def test_git_blob_checksums_are_understood(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(b"hello\n")
    # `git hash-object` of "hello\n"
    assert happyhouse.data.checksum_matches(path, "gitblob:ce013625030ba8dba906f756967f9e9ca394464a")
    assert not happyhouse.data.checksum_matches(path, "gitblob:" + "0" * 40)


def test_offline_says_so_in_one_line(tmp_path, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    manifest = write_manifest(tmp_path, f"http://127.0.0.1:{port}", [("images/a.jpg", sha(b"a"), "a.jpg")])
    code = happyhouse.data.main_fetch(["--dest", str(tmp_path / "dest"), "--manifest", str(manifest)])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 1
    assert len(out) == 1 and out[0].startswith("fetch: offline:")


def test_shipped_manifest_lists_every_course_file():
    entries = happyhouse.data.read_manifest()
    weights = [e for e in entries if e[0].startswith("weights/")]
    assert len(weights) == 226
    assert all(e[1].startswith(("sha256:", "gitblob:")) for e in entries)
    assert any(e[0] == "images/camera_0.jpg" for e in entries)


def test_lookup_prefers_explicit_then_env_then_project(tmp_path, monkeypatch):
    explicit, env = tmp_path / "explicit", tmp_path / "env"
    for root in (explicit, env):
        (root / "images").mkdir(parents=True)
        (root / "images" / "face.jpg").write_bytes(root.name.encode())
    monkeypatch.setenv("COURSE_DATA", str(env))
    assert happyhouse.data.find_file("images", "face.jpg", root=explicit).read_bytes() == b"explicit"
    assert happyhouse.data.find_file("images", "images/face.jpg").read_bytes() == b"env"
    assert happyhouse.data.find_folder("images") == env / "images"
    monkeypatch.delenv("COURSE_DATA")
    with pytest.raises(happyhouse.data.DataNotFoundError) as err:
        happyhouse.data.find_file("images", "nobody.jpg")
    message = str(err.value)
    assert "COURSE_DATA is not set" in message and "fr_utils fetch" in message
    assert str(Path(happyhouse.data.PROJECT_ROOT) / "images" / "nobody.jpg") in message


def test_relative_course_data_is_read_from_the_project_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # e.g. a notebook kernel running in notebooks/
    monkeypatch.setenv("COURSE_DATA", "tests")  # relative: exists from the project folder, not from here
    assert happyhouse.data.data_roots()[0].resolve() == (Path(happyhouse.data.PROJECT_ROOT) / "tests").resolve()


def test_relative_course_data_gives_absolute_paths(tmp_path, monkeypatch):
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "images" / "face.jpg").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COURSE_DATA", "data")
    folder = happyhouse.data.find_folder("images")
    assert folder.is_absolute() and folder == tmp_path / "data" / "images"
    assert happyhouse.data.find_file("images", "face.jpg").is_absolute()


def test_a_typed_path_is_never_swapped_for_a_course_file(tmp_path, monkeypatch):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "face.jpg").write_bytes(b"course")
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    assert happyhouse.data.find_file("images", "face.jpg").read_bytes() == b"course"
    with pytest.raises(happyhouse.data.DataNotFoundError, match="elsewhere/face.jpg: no such file"):
        happyhouse.data.find_file("images", tmp_path / "elsewhere" / "face.jpg")


def test_an_explicit_data_folder_may_have_any_name(tmp_path, monkeypatch):
    """load_weights_from_FaceNet(model, "my_csvs") refused a weights folder not named weights/, and a
    folder given as a picture was called missing."""
    import happyhouse.data

    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "elsewhere"))
    mine = tmp_path / "my_csvs"
    mine.mkdir()
    (mine / "conv1_w.csv").write_text("0.1\n")
    assert happyhouse.data.find_folders("weights", mine) == [mine]
    (tmp_path / "project" / "weights").mkdir(parents=True)
    (tmp_path / "project" / "weights" / "conv1_w.csv").write_text("0.1\n")
    assert happyhouse.data.find_folders("weights", tmp_path / "project") == [tmp_path / "project" / "weights"]
    with pytest.raises(happyhouse.data.DataNotFoundError) as err:
        happyhouse.data.find_folders("weights", tmp_path / "empty_does_not_exist")
    assert "only the folder given was searched" in str(err.value) and "COURSE_DATA=" not in str(err.value)
    with pytest.raises(happyhouse.data.DataNotFoundError, match="is a folder, not a file"):
        happyhouse.data.find_file("images", tmp_path)
