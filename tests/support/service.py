"""A real `loadgen serve` in a subprocess, and a small HTTP client that keeps every answer.

The service runs as an operator starts it (flags and LOADGEN_* variables); its stdout and
stderr go to files, so a test can read what it said, and every reply the client gets is kept,
so a test can scan all of them (for a secret, say).
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import orjson

from tests.support.ports import free_port

START_TIMEOUT_S = 60.0
# Sent when a call names no token: the service's first token (see `Service.call`).
DEFAULT = object()


@dataclass(frozen=True)
class Reply:
    """One HTTP answer: status, headers, and the whole body."""

    status: int
    headers: Message
    body: bytes

    @property
    def content_type(self) -> str:
        """The media type, without parameters."""
        return (self.headers.get("Content-Type") or "").split(";")[0].strip()

    def json(self) -> Any:
        """The body as JSON."""
        return orjson.loads(self.body)


@dataclass(frozen=True)
class Event:
    """One server-sent event."""

    name: str
    data: dict[str, Any]


@dataclass
class Service:
    """`loadgen serve ARGS` on a free loopback port, with `env` added to the environment.

    `tokens` are the API tokens the client sends by default (the first one); they are not
    given to the service here: pass them in `env` or a token file.
    """

    results: Path
    logs: Path
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    token: str | None = None
    port: int = field(default_factory=free_port)
    replies: list[Reply] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    _starts: int = 0

    def argv(self) -> list[str]:
        """The command line."""
        return [sys.executable, "-m", "loadgen", "serve", "--port", str(self.port),
                "--results", str(self.results), *self.args]  # fmt: skip

    def start(self) -> Service:
        """Start it and wait until /healthz answers (AssertionError if it never does)."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self._starts += 1
        out = (self.logs / f"stdout.{self._starts}").open("wb")
        err = (self.logs / f"stderr.{self._starts}").open("wb")
        with out, err:
            # Wide enough that no line of its console is wrapped (or a word split).
            env = {**os.environ, "COLUMNS": "1000", **self.env}
            self.process = subprocess.Popen(self.argv(), env=env, stdout=out, stderr=err)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if self.call("GET", "/healthz", token=None).status == 200:
                    return self
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"the service did not start:\n{self.stderr}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL it: no chance to save anything."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def stop(self) -> None:
        """SIGTERM it and wait (SIGKILL after 30 s)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def stderr(self) -> str:
        """Everything it wrote to stderr, over all its starts."""
        return "".join(path.read_text() for path in sorted(self.logs.glob("stderr.*")))

    def log_bytes(self) -> bytes:
        """Everything it wrote to stdout and stderr, over all its starts (and once more with
        no line breaks, should a line be wrapped in the middle of a word)."""
        written = b"".join(path.read_bytes() for path in sorted(self.logs.glob("std*")))
        return written + written.replace(b"\n", b"")

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: object = DEFAULT,
        headers: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
    ) -> Reply:
        """One request; `path` is sent as it is (no normalising), a non-bytes `body` as JSON."""
        sent = dict(headers or {})
        chosen = self.token if token is DEFAULT else token
        if chosen is not None:
            sent["Authorization"] = f"Bearer {chosen}"
        data = body if body is None or isinstance(body, bytes) else orjson.dumps(body)
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        connection = http.client.HTTPConnection(host, self.port, timeout=30)
        try:
            connection.request(method, path, body=data, headers=sent)
            response = connection.getresponse()
            reply = Reply(response.status, response.headers, response.read())
        finally:
            connection.close()
        self.replies.append(reply)
        return reply

    def submit(self, sweep: Mapping[str, Any], **headers: str) -> str:
        """POST a sweep that must be accepted; its id."""
        reply = self.call("POST", "/v1/sweeps", sweep, headers=headers)
        assert reply.status == 202, reply.body
        sweep_id: str = reply.json()["id"]
        return sweep_id

    def sweep(self, sweep_id: str) -> dict[str, Any]:
        """GET /v1/sweeps/ID (which must answer 200)."""
        reply = self.call("GET", f"/v1/sweeps/{sweep_id}")
        assert reply.status == 200, reply.body
        document: dict[str, Any] = reply.json()
        return document

    def wait(self, sweep_id: str, statuses: set[str], timeout_s: float = 60.0) -> dict[str, Any]:
        """Poll the sweep until its status is one of `statuses`; its document."""
        deadline = time.monotonic() + timeout_s
        while True:
            document = self.sweep(sweep_id)
            if document["status"] in statuses:
                return document
            if time.monotonic() > deadline:
                raise AssertionError(f"sweep {sweep_id} stayed {document['status']}: {document}")
            time.sleep(0.05)

    def events(self, sweep_id: str, timeout_s: float = 60.0) -> list[Event]:
        """GET /v1/sweeps/ID/events to the end of the stream (it ends with the sweep)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout_s)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            connection.request("GET", f"/v1/sweeps/{sweep_id}/events", headers=headers)
            response = connection.getresponse()
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            body = response.read()
        finally:
            connection.close()
        self.replies.append(Reply(200, response.headers, body))
        return parse_events(body)


def parse_events(body: bytes) -> list[Event]:
    """The events of a text/event-stream body (comments skipped)."""
    events = []
    for block in body.decode().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
        )
        if fields:
            events.append(Event(fields["event"], orjson.loads(fields["data"])))
    return events


def running(service: Service) -> Iterator[Service]:
    """`service` started, stopped afterwards (for fixtures: `yield from running(...)`)."""
    service.start()
    try:
        yield service
    finally:
        service.stop()
