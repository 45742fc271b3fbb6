"""`door watch --mqtt`: events published to a real MQTT broker (Debian's mosquitto, started here on
loopback), read back with paho; the broker down (the watcher keeps going and says so), the broker
coming back (queued events delivered), credentials from the environment only.

Without the mosquitto binary the tests skip, saying why; in CI (``CI`` set) they fail instead.
"""
import getpass
import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from paho.mqtt.client import CallbackAPIVersion, Client

from happyhouse.door.mqtt import MqttPublisher, MqttSettings, camera_name, topic_part
from happyhouse.door.watch_cli import unique_cameras
from system_packages import missing
from test_door_service import Server
from test_door_watch import check_stored, door, noise, watch, write_video  # noqa: F401 (door: a fixture)

PREFIX = "happyhouse"


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if Path(p).is_file()), None)
    if found:
        return found
    missing("mosquitto", "apt-get install mosquitto")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(folder: Path, port: int, users: dict | None = None) -> subprocess.Popen:
    """mosquitto on 127.0.0.1:``port`` (anonymous, or only ``users`` {name: password}), once it listens."""
    binary = mosquitto_binary()
    conf = [f"listener {port} 127.0.0.1", "persistence false", f"user {getpass.getuser()}"]  # root: no drop
    if users:
        passwords = folder / "passwords"
        passwords.write_text("".join(f"{u}:{p}\n" for u, p in users.items()))
        passwords.chmod(0o600)
        subprocess.run([shutil.which("mosquitto_passwd") or "mosquitto_passwd", "-U", str(passwords)],
                       check=True, capture_output=True)                 # hashes the passwords in place
        conf += ["allow_anonymous false", f"password_file {passwords}"]
    else:
        conf.append("allow_anonymous true")
    (folder / "mosquitto.conf").write_text("\n".join(conf) + "\n")
    proc = subprocess.Popen([binary, "-c", str(folder / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc
        except OSError:
            assert proc.poll() is None, f"mosquitto did not start: {proc.stderr.read()}"
            time.sleep(0.05)
    proc.kill()
    pytest.fail("mosquitto did not listen within 5 s")


def stop_broker(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def broker(tmp_path):
    """A fresh anonymous broker on a free loopback port; its port."""
    port = free_port()
    proc = start_broker(tmp_path, port)
    yield port
    stop_broker(proc)


class Subscriber:
    """A paho client subscribed to every topic (``#``): ``messages`` (topic, payload text, retained)."""

    def __init__(self, port: int, auth: tuple[str, str] | None = None):
        self.messages, self.changed, self.subscribed = [], threading.Condition(), threading.Event()
        self.client = Client(CallbackAPIVersion.VERSION2, client_id=f"test-sub-{time.monotonic_ns()}")
        if auth:
            self.client.username_pw_set(*auth)
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe("#", qos=1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self.on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(5), "the test's subscriber could not subscribe"

    def on_message(self, client, userdata, msg):
        with self.changed:
            self.messages.append((msg.topic, msg.payload.decode(), bool(msg.retain)))
            self.changed.notify_all()

    def wait_for(self, ok, timeout: float = 10.0) -> list:
        """The messages once ``ok(messages)`` holds (fails after ``timeout`` s)."""
        with self.changed:
            assert self.changed.wait_for(lambda: ok(self.messages), timeout), self.messages
            return list(self.messages)

    def on(self, topic: str) -> list:
        return [payload for t, payload, _ in self.messages if t == topic]

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def events_on(messages, topic=f"{PREFIX}/events") -> list[dict]:
    return [json.loads(payload) for t, payload, _ in messages if t == topic]


# -- through the watcher --------------------------------------------------------------------------
def test_watch_publishes_every_event_and_the_latest_retained(door, broker, tmp_path, capsys):
    db, _, s = door
    video = write_video(tmp_path / "door.avi", s["obama"] + s["stranger"] + [noise()])
    live = Subscriber(broker)
    code, events, err = watch(["--db", db, "watch", video, "--mqtt", f"mqtt://127.0.0.1:{broker}/{PREFIX}",
                               "--mqtt-camera", "front door"], capsys)
    assert code == 0, err
    assert [e["name"] for e in events] == ["barack_obama", "unknown"], err
    obama, stranger = events
    got = live.wait_for(lambda m: len(events_on(m)) == 2 and (f"{PREFIX}/status", "offline", False) in m)
    live.close()
    assert events_on(got) == events                                  # every event, as printed, in order
    assert events_on(got, f"{PREFIX}/front_door/person") == events   # the camera's latest, each time
    assert events_on(got, f"{PREFIX}/people/barack_obama") == [obama]
    assert events_on(got, f"{PREFIX}/people/unknown") == [stranger]
    assert [p for t, p, _ in got if t == f"{PREFIX}/status"] == ["online", "offline"]
    assert f"mqtt: connected to mqtt://127.0.0.1:{broker}" in err
    check_stored(db, events)
    later = Subscriber(broker)                     # someone subscribing afterwards: the retained state
    retained = later.wait_for(lambda m: len(m) >= 4)
    later.close()
    assert {t: (json.loads(p) if p.startswith("{") else p) for t, p, r in retained if r} == {
        f"{PREFIX}/front_door/person": stranger, f"{PREFIX}/people/barack_obama": obama,
        f"{PREFIX}/people/unknown": stranger, f"{PREFIX}/status": "offline"}


def test_broker_down_the_watcher_keeps_going_and_says_so(door, tmp_path, capsys):
    db, _, s = door
    mosquitto_binary()
    video = write_video(tmp_path / "door.avi", s["obama"] + s["stranger"])
    code, events, err = watch(["--db", db, "watch", video, "--mqtt", f"mqtt://127.0.0.1:{free_port()}"], capsys)
    assert code == 0, err
    assert [e["name"] for e in events] == ["barack_obama", "unknown"], err
    assert "mqtt: cannot reach mqtt://127.0.0.1:" in err and "retrying with back-off" in err
    assert "message(s) not delivered to mqtt://127.0.0.1:" in err and "Traceback" not in err
    check_stored(db, events)


def test_serve_watch_publishes_as_door_watch_does(door, broker, tmp_path):
    db, folder, s = door
    video = write_video(tmp_path / "door.avi", s["obama"] + s["stranger"])
    live = Subscriber(broker)
    srv = Server(folder, extra=("--watch", str(video), "--mqtt", f"mqtt://127.0.0.1:{broker}/{PREFIX}",
                                "--mqtt-camera", "porch", "--cooldown", "600"))
    try:
        got = live.wait_for(lambda m: len(events_on(m)) == len(events_on(m, f"{PREFIX}/porch/person")) == 2,
                            timeout=120)
    finally:
        srv.stop()
        live.close()
    assert [e["name"] for e in events_on(got)] == ["barack_obama", "unknown"]
    assert events_on(got, f"{PREFIX}/porch/person") == events_on(got)
    check_stored(db, events_on(got))


def test_mqtt_without_watch_is_refused(tmp_path, capsys):
    code, _, err = watch(["--db", tmp_path / "none.db", "serve", "--mqtt", "mqtt://127.0.0.1"], capsys)
    assert code == 2 and "--mqtt only work with --watch SOURCE" in err, err


# -- the publisher on its own: reconnection, credentials ------------------------------------------
def event(i: int, name: str) -> dict:
    return {"id": i, "time": "2026-12-04T08:00:00Z", "source": "door.avi", "track": i, "name": name,
            "distance": 0.4, "threshold": 0.7, "frames": 3, "box": [1, 2, 3, 4], "snapshot": None}


def test_events_queued_while_the_broker_is_down_arrive_when_it_is_back(tmp_path):
    port, lines = free_port(), []
    publisher = MqttPublisher(MqttSettings.from_url(f"mqtt://127.0.0.1:{port}", camera="hall"), log=lines.append)
    publisher.submit(event(1, "kian"))                        # nobody listening yet: kept
    deadline = time.monotonic() + 10
    while not any("cannot reach" in line for line in lines):
        assert time.monotonic() < deadline, lines
        time.sleep(0.05)
    proc = start_broker(tmp_path, port)
    try:
        sub = Subscriber(port)
        publisher.submit(event(2, "unknown"))
        got = sub.wait_for(lambda m: len(events_on(m)) == 2, timeout=20)
        sub.close()
        publisher.close(wait=5)
    finally:
        stop_broker(proc)
    assert [e["id"] for e in events_on(got)] == [1, 2]
    assert any(line.startswith(f"mqtt: connected to mqtt://127.0.0.1:{port}") for line in lines), lines
    assert not any("dropped" in line for line in lines), lines


def test_credentials_come_from_the_environment(tmp_path):
    port, lines = free_port(), []
    proc = start_broker(tmp_path, port, users={"door": "s3cret"})
    try:
        sub = Subscriber(port, auth=("door", "s3cret"))
        env = {"DOOR_MQTT_USERNAME": "door", "DOOR_MQTT_PASSWORD": "s3cret"}
        publisher = MqttPublisher(MqttSettings.from_url(f"mqtt://127.0.0.1:{port}/house", "hall", env), lines.append)
        publisher.submit(event(7, "kian"))
        publisher.close(wait=5)
        got = sub.wait_for(lambda m: any(t == "house/people/kian" for t, _, _ in m))
        sub.close()
        refused = MqttPublisher(MqttSettings.from_url(f"mqtt://127.0.0.1:{port}", "hall", {}), lines.append)
        deadline = time.monotonic() + 10
        while not any("refused the connection" in line for line in lines):
            assert time.monotonic() < deadline, lines
            time.sleep(0.05)
        refused.close(wait=0)
    finally:
        stop_broker(proc)
    assert [e["id"] for e in events_on(got, "house/events")] == [7]
    assert not any("s3cret" in line for line in lines), lines


@pytest.mark.parametrize("url, message", [
    ("http://broker.local/x", "give mqtt://HOST[:PORT][/PREFIX]"),
    ("mqtt://", "give mqtt://HOST"),
    ("mqtt://broker.local:99999", "give mqtt://HOST"),
    ("mqtt://broker.local/a/#", "give mqtt://HOST"),
    ("mqtt://door:hunter2@broker.local", "set DOOR_MQTT_USERNAME and DOOR_MQTT_PASSWORD"),
])
def test_bad_mqtt_url_is_one_clear_error(tmp_path, capsys, url, message):
    code, _, err = watch(["--db", tmp_path / "none.db", "watch", tmp_path, "--mqtt", url], capsys)
    assert code == 2 and message in err and "hunter2" not in err and "Traceback" not in err, err


def test_several_cameras_get_a_topic_level_each(tmp_path, capsys):
    assert unique_cameras(["/a/door.mp4", "/b/door.mp4", "rtsp://u:p@cam/x"], ["door", "door", "back yard"]) == {
        "/a/door.mp4": "door", "/b/door.mp4": "door_2", "rtsp://cam/x": "back_yard"}   # no credentials
    s = MqttSettings.from_url("mqtt://h", "front")
    s = MqttSettings(**{**s.__dict__, "cameras": {"back.mp4": "back"}})
    assert [t for t, _ in s.topics({"source": "back.mp4", "name": "kian"})][1] == "happyhouse/back/person"
    assert [t for t, _ in s.topics({"source": "other", "name": "kian"})][1] == "happyhouse/front/person"
    code, _, err = watch(["--db", tmp_path / "none.db", "watch", "a.mp4", "b.mp4", "--mqtt", "mqtt://h",
                          "--mqtt-camera", "front"], capsys)
    assert code == 2 and "--mqtt-camera: give one per SOURCE (2)" in err, err


def test_topic_names():
    s = MqttSettings.from_url("mqtts://ha.local/home/door/", camera="front door")
    assert (s.port, s.tls, s.prefix, s.camera) == (8883, True, "home/door", "front_door")
    assert [t for t, _ in s.topics({"name": "a/b+c#"})][2] == "home/door/people/a_b_c"
    assert (camera_name("/videos/porch.mp4"), camera_name("rtsp://cam.local:554/live/ch1"), camera_name("0"),
            camera_name("http://cam.local/")) == ("porch", "ch1", "camera0", "cam.local")
    assert topic_part("///") == "_" and MqttSettings.from_url("mqtt://h", "c").prefix == PREFIX
