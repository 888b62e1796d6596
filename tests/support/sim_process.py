"""`loadgen sim` in a process of its own, for tests that sweep it over real loopback HTTP."""

from __future__ import annotations

import http.client
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path

from tests.support.ports import free_port

START_TIMEOUT_S = 60.0


@contextmanager
def sim_process(
    time_scale: float = 1.0, log: Path | None = None, env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """A `loadgen sim --time-scale S` on a free loopback port until the block ends; yields
    its base URL (with /v1). Its output goes to `log` (else nowhere)."""
    port = free_port()
    argv = [sys.executable, "-m", "loadgen", "sim", "--port", str(port),
            "--time-scale", str(time_scale)]  # fmt: skip
    with log.open("wb") if log is not None else nullcontext(subprocess.DEVNULL) as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_healthy(port, process, log)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(30)


def _wait_healthy(port: int, process: subprocess.Popen[bytes], log: Path | None) -> None:
    """Wait until the simulator on `port` answers /health (AssertionError if it never does)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while process.poll() is None and time.monotonic() < deadline:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
        finally:
            connection.close()
    shown = log.read_text() if log is not None and log.exists() else ""
    raise AssertionError(f"the simulator on port {port} did not start {shown}")
