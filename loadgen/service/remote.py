"""`loadgen remote`: a client of the service's API, for people and CI jobs.

`submit` queues a sweep file and, unless told not to, waits for its end: its exit code says how
the sweep went, so a CI job can gate on it. The token comes from LOADGEN_API_TOKEN, or the file
LOADGEN_API_TOKEN_FILE names.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadgen.config.service import client_token

FINISHED = ("succeeded", "failed", "cancelled")
RESULT_FILES = ("summary.json", "summary.csv", "requests.jsonl", "report.html")
_TIMEOUT_S = 30.0


class RemoteError(Exception):
    """The service refused a request, or could not be reached; `status` is its HTTP status
    (0: no answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Remote:
    """A service at `server` (its root URL), called with `token` when there is one."""

    server: str
    token: str | None

    @classmethod
    def from_env(cls, server: str) -> Remote:
        """The service at `server`, with the token of LOADGEN_API_TOKEN or its file."""
        return cls(server.rstrip("/"), client_token() or None)

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> bytes:
        """The body of the answer to `method path` (RemoteError for anything but 2xx)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.server}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.token is not None:
            request.add_header("Authorization", f"Bearer {self.token}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
                answer: bytes = response.read()
                return answer
        except urllib.error.HTTPError as exc:
            raise RemoteError(exc.code, _problem_text(exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RemoteError(0, f"cannot reach {self.server}: {reason}") from None

    def json(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        """The JSON answer to `method path`."""
        return json.loads(self.call(method, path, body, headers))


def _problem_text(error: urllib.error.HTTPError) -> str:
    """'title: detail' of a problem document, else the status line."""
    try:
        problem = json.loads(error.read())
        errors = problem.get("errors") or []
        more = f" ({'; '.join(map(str, errors))})" if errors else ""
        return f"{problem['title']}: {problem['detail']}{more}"
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"HTTP {error.code} {error.reason}"


def submit(remote: Remote, document: Any, idempotency_key: str | None) -> str:
    """Queue the sweep `document`; its id."""
    headers = {} if idempotency_key is None else {"Idempotency-Key": idempotency_key}
    return str(remote.json("POST", "/v1/sweeps", document, **headers)["id"])


def wait(
    remote: Remote, sweep_id: str, say: Callable[[str], None], poll_s: float = 1.0
) -> dict[str, Any]:
    """Poll the sweep until it finishes, telling each change of status or step; its document."""
    told = None
    while True:
        state: dict[str, Any] = remote.json("GET", f"/v1/sweeps/{sweep_id}")
        progress = state.get("progress") or {}
        now = (state["status"], len(state["steps"]), progress.get("step"))
        if now != told:
            step = (
                f", step {progress['step']} at {progress['rate_rps']:g} req/s" if progress else ""
            )
            say(f"{sweep_id}: {state['status']}{step}, {len(state['steps'])} step(s) done")
            told = now
        if state["status"] in FINISHED:
            return state
        time.sleep(poll_s)


def fetch(remote: Remote, sweep_id: str, out: Path) -> list[Path]:
    """Download the sweep's result files into `out`; the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in RESULT_FILES:
        try:
            data = remote.call("GET", f"/v1/sweeps/{sweep_id}/{name}")
        except RemoteError as exc:
            if exc.status == 404:
                continue  # not there (yet): a sweep with no finished step has no report
            raise
        (out / name).write_bytes(data)
        written.append(out / name)
    return written
