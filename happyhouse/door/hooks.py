"""Acting on a decision: a command run on each match (a relay, a lock) and a webhook for every event.

Hooks run on two background threads, the command's and the webhook's, each in order, so a slow
or failing hook never stalls the watcher, and a dead webhook never holds back the lock: each
attempt that fails is logged on stderr and retried (``retries`` times, with doubling back-off;
a command not while a newer decision waits, nor past ``command_max_age``), then dropped with a
last message. The command is split once (shlex) and
run without a shell; the decision reaches it only through environment variables
(``DOOR_NAME``, ``DOOR_DISTANCE``, ``DOOR_THRESHOLD``, ``DOOR_TRACK``, ``DOOR_SOURCE``,
``DOOR_TIME``, ``DOOR_SNAPSHOT``, ``DOOR_EVENT`` the whole JSON), never through its command line.

    hooks = Hooks(on_match="relay-pulse --pin 17", webhook="https://ha.local/api/webhook/door")
    hooks.submit(event)      # returns at once
    hooks.close(wait=10)     # at shutdown: lets queued hooks finish, within ``wait`` seconds
"""
from __future__ import annotations

import json
import os
import queue
import shlex
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

from happyhouse.door.sources import names_credentials, redact

WEBHOOK_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class HookSettings:
    """``on_match``: command line (trusted, from the operator); ``webhook``: http(s) URL;
    ``retries`` after the first failure; ``backoff``: seconds before the first retry (then doubled);
    ``timeout``: seconds an attempt may take; ``command_max_age``: seconds after its decision past which
    the command (an unlock) is no longer retried, nor retried at all while a newer decision waits: a
    late unlock could open the door for whoever is there then."""
    on_match: str | None = None
    webhook: str | None = None
    retries: int = 3
    backoff: float = 1.0
    timeout: float = 10.0
    command_max_age: float = 3.0


def check_webhook(url: str) -> str:
    """``url`` if it is an http(s) URL with a host (and a port from 1 to 65535, if any) and no user name
    or password (command lines show in process lists, and a failed call's error would quote it);
    ValueError saying what is accepted otherwise, the URL's credentials left out."""
    parts = urlsplit(url)
    if names_credentials(url):
        raise ValueError("--webhook: put no user name or password in the URL (command lines show in process "
                         "lists and logs); give the receiver a secret path or query instead.")
    try:
        port_ok = parts.port is None or 0 < parts.port
    except ValueError:
        port_ok = False
    if parts.scheme.lower() not in WEBHOOK_SCHEMES or not parts.hostname or not port_ok:
        raise ValueError(f"--webhook {redact(url)!r}: give an http:// or https:// URL with a host (and a port "
                         "from 1 to 65535).")
    return url


def event_environment(event: dict) -> dict[str, str]:
    """The DOOR_* variables for one event (all strings)."""
    text = {k: "" if v is None else str(v) for k, v in event.items()}
    return {"DOOR_NAME": text.get("name", ""), "DOOR_DISTANCE": text.get("distance", ""),
            "DOOR_THRESHOLD": text.get("threshold", ""), "DOOR_TRACK": text.get("track", ""),
            "DOOR_SOURCE": text.get("source", ""), "DOOR_TIME": text.get("time", ""),
            "DOOR_SNAPSHOT": text.get("snapshot", ""), "DOOR_EVENT": json.dumps(event)}


class Hooks:
    """The on-match command and the webhook, each run on its own worker thread (see the module docstring)."""

    KINDS = ("command", "webhook")

    def __init__(self, settings: HookSettings, log=None):
        self.settings = settings
        self.argv = shlex.split(settings.on_match) if settings.on_match else None
        if settings.webhook:
            check_webhook(settings.webhook)
        self.log = log or (lambda message: print(message, file=sys.stderr, flush=True))
        self.failures = 0
        self._lock = threading.Lock()  # the failure count, and the workers started once
        self._queues = {kind: queue.Queue() for kind in self.KINDS}
        self._threads = {kind: threading.Thread(target=self._work, args=(kind,), name=f"door-{kind}", daemon=True)
                         for kind in self.KINDS}

    def submit(self, event: dict) -> None:
        """Queue the hooks for ``event``: the command for a match, the webhook for any event."""
        if self.argv and event.get("name") not in (None, "unknown"):
            self._put("command", event)
        if self.settings.webhook:
            self._put("webhook", event)

    def close(self, wait: float = 10.0) -> None:
        """Stop after the queued hooks, waiting at most ``wait`` seconds in all."""
        deadline = time.monotonic() + wait
        running = {kind: t for kind, t in self._threads.items() if t.is_alive()}
        for kind in running:
            self._queues[kind].put(None)
        for kind, thread in running.items():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                self.log(f"hooks: {self._queues[kind].qsize()} {kind} hook(s) still queued at exit were dropped.")

    def _put(self, kind: str, event: dict) -> None:
        self._queues[kind].put((event, time.monotonic()))
        with self._lock:  # its worker starts with its first hook, whichever camera's thread brings it
            if self._threads[kind].ident is None:
                self._threads[kind].start()

    def _work(self, kind: str) -> None:
        action = self._run_command if kind == "command" else self._post
        while (item := self._queues[kind].get()) is not None:
            self._attempt(kind, *item, action)

    def _attempt(self, kind: str, event: dict, queued: float, action) -> bool:
        delay = self.settings.backoff
        for attempt in range(1, self.settings.retries + 2):
            try:
                action(event)
                return True
            except Exception as err:   # any failure of a hook is logged, never raised
                with self._lock:
                    self.failures += 1
                stale = kind == "command" and self._stale(queued, time.monotonic() + delay)
                last = attempt > self.settings.retries or stale
                self.log(f"hooks: {kind} for event {event.get('id', '?')} failed (attempt {attempt}): {err}"
                         + (f"; not retried: {stale}." if stale else "; giving up." if last else
                            f"; retrying in {delay:g} s."))
                if last:
                    return False
                time.sleep(delay)
                delay *= 2
        return False

    def _stale(self, queued: float, retry_at: float) -> str:
        """Why a command queued at monotonic time ``queued`` would come too late if retried at
        ``retry_at`` ("" when it would not)."""
        if any(item is not None for item in list(self._queues["command"].queue)):  # None: close()'s end mark
            return "a newer decision is waiting"
        if retry_at - queued > self.settings.command_max_age:
            return f"it would run over {self.settings.command_max_age:g} s after its decision"
        return ""

    def _run_command(self, event: dict) -> None:
        env = {**os.environ, **event_environment(event)}
        done = subprocess.run(self.argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=self.settings.timeout)
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip()[-200:]
            raise RuntimeError(f"{self.argv[0]} exited {done.returncode}" + (f": {tail}" if tail else ""))

    def _post(self, event: dict) -> None:
        request = urllib.request.Request(self.settings.webhook, data=json.dumps(event).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self.settings.timeout) as response:
            response.read(1 << 16)
