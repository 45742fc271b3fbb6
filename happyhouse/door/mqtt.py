"""Publishing the watcher's events to an MQTT broker, the way Home Assistant and Frigate expect.

``door watch SOURCE --mqtt mqtt://broker.local:1883/happyhouse`` publishes, under the prefix
(``happyhouse`` when the URL has no path):

* ``<prefix>/events``: every event's JSON (QoS 1, not retained), as printed on stdout;
* ``<prefix>/<camera>/person``: the latest event at that camera (QoS 1, retained);
* ``<prefix>/people/<name>``: the latest event of that person, ``unknown`` included (retained);
* ``<prefix>/status``: ``online`` once connected, ``offline`` on a clean exit and, as the broker's
  last will, when the watcher vanishes (retained): Home Assistant's availability topic.

``<camera>`` is ``--mqtt-camera`` or a name made from SOURCE (``door.mp4`` -> ``door``); names
and cameras keep only letters, digits, ``-``, ``_`` and ``.`` (anything else becomes ``_``).
A user name and password come only from ``DOOR_MQTT_USERNAME`` and ``DOOR_MQTT_PASSWORD`` (a URL
carrying them is refused: command lines show in process lists and logs); ``mqtts://`` uses TLS
with the system's certificate authorities.

paho-mqtt's network thread connects in the background and reconnects with doubling back-off
(1 s to ``max_backoff``); every failure is logged on stderr and never reaches the watcher.
Messages published while the broker is down wait in paho's queue (at most ``max_queued``;
beyond that they are dropped, and logged) and go out on reconnection.

    publisher = MqttPublisher(MqttSettings.from_url("mqtt://ha.local/happyhouse", camera="front"))
    publisher.submit(event)     # returns at once
    publisher.close(wait=5)     # "offline", then waits for what is still queued
"""
from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from happyhouse.door.sources import names_credentials, redact

SCHEMES = {"mqtt": 1883, "mqtts": 8883}
DEFAULT_PREFIX = "happyhouse"
USER_VARIABLE, PASSWORD_VARIABLE = "DOOR_MQTT_USERNAME", "DOOR_MQTT_PASSWORD"
UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def topic_part(text: str) -> str:
    """``text`` as one topic level: runs of anything but letters, digits, ``-_.`` become ``_``."""
    return UNSAFE.sub("_", text).strip("_") or "_"


def camera_name(source: str) -> str:
    """A topic level naming a source: a file's or URL path's stem, a URL's host, ``camera0`` for index 0."""
    if source.isdigit():
        return f"camera{source}"
    parts = urlsplit(source) if "://" in source else None
    stem = Path(parts.path if parts else source.rstrip("/")).stem
    return topic_part(stem or (parts.hostname if parts else "") or "camera")


@dataclass(frozen=True)
class MqttSettings:
    """Broker ``host``/``port``, ``tls``, topic ``prefix``, ``camera`` level (``cameras``: one per
    event source, for several cameras), credentials (from the environment), ``keepalive`` s,
    ``max_backoff`` s between reconnections, ``max_queued`` messages."""
    host: str
    port: int = 1883
    prefix: str = DEFAULT_PREFIX
    camera: str = "camera"
    tls: bool = False
    username: str | None = None
    password: str | None = None
    keepalive: int = 30
    max_backoff: int = 60
    max_queued: int = 1000
    cameras: dict = field(default_factory=dict)

    @classmethod
    def from_url(cls, url: str, camera: str, environ=None) -> "MqttSettings":
        """Settings from ``mqtt[s]://host[:port][/prefix]``; ValueError saying what is accepted otherwise."""
        environ = os.environ if environ is None else environ
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if names_credentials(url) or parts.username is not None or parts.password is not None:
            raise ValueError(f"--mqtt: put no user name or password in the URL (command lines show in process "
                             f"lists and logs); set {USER_VARIABLE} and {PASSWORD_VARIABLE} instead.")
        try:
            port = parts.port
        except ValueError:
            port = -1
        if scheme not in SCHEMES or not parts.hostname or port == -1 or any(c in url for c in "+#?"):
            raise ValueError(f"--mqtt {redact(url)!r}: give mqtt://HOST[:PORT][/PREFIX] (or mqtts:// for TLS), "
                             "e.g. mqtt://homeassistant.local:1883/happyhouse.")
        prefix = "/".join(topic_part(p) for p in parts.path.split("/") if p) or DEFAULT_PREFIX
        return cls(host=parts.hostname, port=port or SCHEMES[scheme], prefix=prefix, camera=topic_part(camera),
                   tls=scheme == "mqtts", username=environ.get(USER_VARIABLE) or None,
                   password=environ.get(PASSWORD_VARIABLE) or None)

    def topics(self, event: dict) -> list[tuple[str, bool]]:
        """(topic, retained) for one event: the stream of events, the camera's and the person's latest."""
        camera = self.cameras.get(event.get("source"), self.camera)
        return [(f"{self.prefix}/events", False), (f"{self.prefix}/{camera}/person", True),
                (f"{self.prefix}/people/{topic_part(str(event.get('name', 'unknown')))}", True)]

    @property
    def status_topic(self) -> str:
        return f"{self.prefix}/status"

    @property
    def where(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


class MqttPublisher:
    """Events to MQTT topics on paho's network thread (see the module docstring)."""

    def __init__(self, settings: MqttSettings, log=None):
        self.settings = settings
        self.log = log or (lambda message: print(message, file=sys.stderr, flush=True))
        self.failures, self.dropped, self.connected = 0, 0, threading.Event()
        self.pending: set[int] = set()      # mids sent or queued, not yet acknowledged
        self.early: set[int] = set()
        self.lock = threading.Condition()
        self.client = self.make_client()
        self.client.connect_async(settings.host, settings.port, keepalive=settings.keepalive)
        self.client.loop_start()

    def make_client(self):
        """A paho client with the last will, credentials, TLS, back-off, queue bound and our callbacks."""
        from paho.mqtt.client import CallbackAPIVersion, Client

        s = self.settings
        client = Client(CallbackAPIVersion.VERSION2, client_id=f"happyhouse-door-{s.camera}-{os.getpid()}")
        client.will_set(s.status_topic, "offline", qos=1, retain=True)
        if s.username:
            client.username_pw_set(s.username, s.password)
        if s.tls:
            client.tls_set()
        client.reconnect_delay_set(min_delay=1, max_delay=s.max_backoff)
        client.max_queued_messages_set(s.max_queued)
        client.on_connect, client.on_connect_fail = self.on_connect, self.on_connect_fail
        client.on_disconnect, client.on_publish = self.on_disconnect, self.on_publish
        return client

    def on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            self.failures += 1
            self.log(f"mqtt: {self.settings.where} refused the connection: {reason_code}; retrying with back-off.")
            return
        self.connected.set()
        self.publish(self.settings.status_topic, "online", retain=True)
        self.log(f"mqtt: connected to {self.settings.where}, publishing under {self.settings.prefix}/.")

    def on_connect_fail(self, client, userdata) -> None:
        self.failures += 1
        self.log(f"mqtt: cannot reach {self.settings.where} (attempt {self.failures}); "
                 f"retrying with back-off up to {self.settings.max_backoff} s.")

    def on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if reason_code.is_failure and was:
            self.log(f"mqtt: lost {self.settings.where} ({reason_code}); reconnecting with back-off.")

    def on_publish(self, client, userdata, mid, reason_code, properties=None) -> None:
        with self.lock:
            if mid in self.pending:
                self.pending.discard(mid)
                self.lock.notify_all()
            else:                      # acknowledged before publish() returned its mid
                self.early.add(mid)

    def publish(self, topic: str, payload: str, retain: bool) -> bool:
        """One QoS 1 message, tracked until the broker acknowledges it; False when paho refused it."""
        from paho.mqtt.client import MQTTErrorCode

        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            return False               # the queue is full (broker down for long): not kept
        with self.lock:                # NO_CONN: kept, sent when the broker is back
            if info.mid in self.early:
                self.early.discard(info.mid)
            else:
                self.pending.add(info.mid)
        return True

    def submit(self, event: dict) -> None:
        """Queue ``event`` on its topics; never raises (a refused message is counted and logged)."""
        payload = json.dumps(event)
        for topic, retain in self.settings.topics(event):
            try:
                if self.publish(topic, payload, retain):
                    continue
                why = f"more than {self.settings.max_queued} messages wait for the broker"
            except Exception as err:   # any failure of a hook is logged, never raised
                why = str(err)
            self.dropped += 1
            self.log(f"mqtt: event {event.get('id', '?')} not queued for {topic} ({why}); dropped.")

    def close(self, wait: float = 5.0) -> None:
        """``offline`` (retained), then at most ``wait`` s for queued messages; disconnects."""
        if self.connected.is_set():
            self.publish(self.settings.status_topic, "offline", retain=True)
        deadline = time.monotonic() + wait
        with self.lock:
            while self.pending and (remaining := deadline - time.monotonic()) > 0:
                self.lock.wait(remaining)
            left = len(self.pending)
        if left:
            self.log(f"mqtt: {left} message(s) not delivered to {self.settings.where} at exit were dropped.")
        self.client.disconnect()
        self.client.loop_stop()
