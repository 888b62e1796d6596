"""The cluster's Locust side: gevent processes that carry loadgen's messages between hosts.

`python -m loadgen.cluster.relay master HOST PORT`: a Locust MasterRunner. Frames on stdin go to
the workers (one, or all); the workers' messages, and their losses (gone quiet past Locust's
heartbeat liveness, or quit), come out on stdout.

`python -m loadgen.cluster.relay worker HOST PORT TIMEOUT_S`: a Locust WorkerRunner with one
engine shard child (`python -m loadgen.cluster.shard`) whose frames it relays both ways.

The engines never run under gevent: Locust patches the standard library on import, and an asyncio
loop blocked in its own poll would starve gevent's hub. So each engine is a plain process of its
own, and these relays only pass bytes.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import gevent
import gevent.lock
import gevent.subprocess
import locust.runners
from gevent.fileobject import FileObjectPosix
from locust.env import Environment
from locust.exception import RPCError
from locust.rpc.protocol import Message as LocustMessage

from loadgen.cluster.wire import Message, frame, read_frame

# Every loadgen message travels in Locust messages of this one type.
LOCUST_TYPE = "loadgen"
_POLL_S = 0.2
_EXIT_USAGE = 2
_EXIT_RUNTIME = 1
_EXIT_INTERRUPTED = 130


class _Pipe:
    """Frames out on a file, one writer at a time."""

    def __init__(self, file: Any) -> None:
        self._file = file
        self._lock = gevent.lock.Semaphore()

    def send(self, message: Message) -> None:
        with self._lock:
            self._file.write(frame(*message))
            self._file.flush()


def _stdio() -> tuple[Any, _Pipe]:
    """This process's stdin and stdout as cooperative (gevent) files."""
    reader = FileObjectPosix(sys.stdin.fileno(), "rb", close=False)
    writer = FileObjectPosix(sys.stdout.fileno(), "wb", close=False)
    return reader, _Pipe(writer)


def run_master(bind_host: str, bind_port: int, web: tuple[str, int] | None) -> int:
    """Relay between this process's stdio and Locust workers until stdin ends.

    With `web` (host, port), Locust's web UI shows the requests the master tells of ("ui").
    """
    environment = Environment()
    stdin, stdout = _stdio()
    try:
        runner = environment.create_master_runner(bind_host, bind_port)
    except RPCError as exc:  # the port is taken, or the address is not this host's
        stdout.send(Message("cannot_listen", {"reason": str(exc)}))
        return 1

    def from_worker(environment: Environment, msg: LocustMessage, **_: Any) -> None:
        stdout.send(Message(msg.data["kind"], msg.data["data"], msg.node_id))

    runner.register_message(LOCUST_TYPE, from_worker)
    listening: dict[str, Any] = {"port": runner.server.port}
    if web is not None:
        listening["web_port"] = _web_ui(environment, *web)
    stdout.send(Message("listening", listening))
    gevent.spawn(_watch_workers, runner, stdout)
    while (message := read_frame(stdin.read)) is not None:
        if message.kind == "ui":
            _fire_requests(environment, message.data)
        else:
            runner.send_message(LOCUST_TYPE, _wrapped(message), message.peer)
    runner.quit()
    return 0


def _web_ui(environment: Environment, host: str, port: int) -> int:
    """Start Locust's web UI, watch-only: loadgen starts and stops the load. Its port."""
    from flask import request

    web_ui: Any = environment.create_web_ui(host, port)

    def watch_only() -> Any:
        if request.method == "POST" and request.path.endswith(("/swarm", "/stop")):
            message = "loadgen sends this load: start and stop it with loadgen"
            return {"success": False, "message": message}, 409
        return None

    web_ui.app.before_request(watch_only)
    while getattr(web_ui, "server", None) is None or not web_ui.server.started:
        gevent.sleep(0.01)
    return int(web_ui.server.server_port)


def _fire_requests(environment: Environment, rows: list[list[Any]]) -> None:
    """Locust's request events for loadgen's records: (name, ms, tokens, error or None)."""
    request: Any = environment.events.request
    for name, response_ms, tokens, error in rows:
        request.fire(
            request_type="POST",
            name=name,
            response_time=response_ms,
            response_length=tokens,
            exception=None if error is None else RuntimeError(error),
            context={},
        )


def _watch_workers(runner: locust.runners.MasterRunner, stdout: _Pipe) -> None:
    """Tell of each worker that quit or went missing (no heartbeat within Locust's liveness)."""
    known: set[str] = set()
    while True:
        present = {node.id: node.state for node in runner.clients.all}
        for worker in sorted(known - present.keys()):
            stdout.send(Message("lost", {"reason": "it quit or its connection dropped"}, worker))
        for worker, state in present.items():
            if state == locust.runners.STATE_MISSING and worker in known:
                reason = "it sent no heartbeat for Locust's liveness period"
                stdout.send(Message("lost", {"reason": reason}, worker))
        known = {worker for worker, state in present.items() if state != "missing"}
        gevent.sleep(_POLL_S)


def run_worker(master_host: str, master_port: int, timeout_s: float) -> int:
    """Connect to the master, start the shard, relay until either ends; the exit code."""
    # Locust waits CONNECT_TIMEOUT per try, CONNECT_RETRY_COUNT more times.
    locust.runners.CONNECT_TIMEOUT = 1
    locust.runners.CONNECT_RETRY_COUNT = max(int(timeout_s), 1) - 1
    try:
        runner = Environment().create_worker_runner(master_host, master_port)
    except ConnectionError:
        print(
            f"loadgen worker: cannot reach a master at {master_host}:{master_port} "
            f"after {timeout_s:g} s",
            file=sys.stderr,
        )
        return _EXIT_RUNTIME
    shard = gevent.subprocess.Popen(
        [sys.executable, "-m", "loadgen.cluster.shard"],
        stdin=gevent.subprocess.PIPE,
        stdout=gevent.subprocess.PIPE,
    )
    to_shard = _Pipe(shard.stdin)
    verdict: dict[str, int] = {}

    def from_master(environment: Environment, msg: LocustMessage, **_: Any) -> None:
        kind, data = msg.data["kind"], msg.data["data"]
        if kind == "refused":
            print(f"loadgen worker: the master refused this worker: {data}", file=sys.stderr)
            verdict["code"] = _EXIT_USAGE
            runner.quit()
            return
        to_shard.send(Message(kind, data))

    runner.register_message(LOCUST_TYPE, from_master)
    relay = gevent.spawn(_shard_to_master, shard, runner)
    quit_told = gevent.spawn(runner.greenlet.join)
    hub = gevent.get_hub()
    hub.NOT_ERROR = (*hub.NOT_ERROR, KeyboardInterrupt)  # Ctrl-C is no error to print
    try:
        gevent.joinall([relay, quit_told], count=1)  # the shard ended, or the master said quit
    except KeyboardInterrupt:  # Ctrl-C on the worker: leave the master, which marks it lost
        print("loadgen worker: interrupted; leaving the master", file=sys.stderr)
        verdict["code"] = _EXIT_INTERRUPTED
    relay.kill()
    shard.stdin.close()
    code = shard.wait()
    if not quit_told.dead:
        runner.send_message("quit")  # Locust's own word for a worker that leaves
        runner.quit()
    return verdict.get("code", _EXIT_RUNTIME if code else 0)


def _shard_to_master(shard: gevent.subprocess.Popen[bytes], runner: Any) -> None:
    """Pass the shard's frames on to the master until the shard's output ends."""
    while (message := read_frame(shard.stdout.read)) is not None:
        runner.send_message(LOCUST_TYPE, _wrapped(message))


def _wrapped(message: Message) -> dict[str, Any]:
    """A loadgen message as the data of a Locust one."""
    return {"kind": message.kind, "data": message.data}


def _die_with_parent() -> None:
    """On Linux, end with the process that started this one (a local cluster's master)."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def main(argv: list[str]) -> int:
    """`master HOST PORT [WEB_HOST WEB_PORT]` or `worker HOST PORT TIMEOUT_S
    [--die-with-parent]`."""
    if "--die-with-parent" in argv:
        argv.remove("--die-with-parent")
        _die_with_parent()
    role, host, port = argv[0], argv[1], int(argv[2])
    if role == "master":
        return run_master(host, port, (argv[3], int(argv[4])) if len(argv) > 3 else None)
    return run_worker(host, port, float(argv[3]))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main(sys.argv[1:]))
