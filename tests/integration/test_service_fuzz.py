"""A real `loadgen serve` against its own OpenAPI document (loadgen/service/openapi.py).

schemathesis fuzzes every operation and checks each answer against the document: no 5xx, and
only documented statuses, media types, bodies and headers. Fuzzed sweep ids are random, so every
one is unknown; the tests before the fuzzing call the same operations with the ids of real
sweeps (one finished, one running), and submit bodies that reach each documented status.

No fuzzed submission runs: one sweep keeps the queue busy (at 1 req/s against a fake server on
loopback) until the service stops, and the queue holds two at most.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from loadgen.service.openapi import document
from tests.support.fake_openai import Behaviour, FakeOpenAI, ServerThread
from tests.support.service import Service

TOKEN = "fuzz-test-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
QUEUE_SIZE = 2
MAX_RATE_RPS = 50
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
SCHEMA = schemathesis.openapi.from_dict(document())
# A bound on any one answer: only the events of a running sweep stream for longer.
REQUEST_TIMEOUT_S = 20.0


def sweep(
    url: str, *, rates: tuple[float, ...] = (40,), num: int = 20, trim: int = 2
) -> dict[str, Any]:
    """A sweep file (as JSON) of small synthetic requests against `url`."""
    return {
        "target": {"base_url": url, "model": "fake-model"},
        "load": {"rates_rps": list(rates), "num_requests": num, "trim": trim},
        "workload": {"dataset": "synthetic", "input_len": 8, "output_len": 4},
    }


@dataclass(frozen=True)
class Running:
    """The service, the fake server it may send to, and its two sweeps."""

    service: Service
    target: str  # the fake's base URL (with /v1)
    finished: str  # a sweep that succeeded
    busy: str  # a sweep that runs until the service stops

    @property
    def url(self) -> str:
        """The service's base URL."""
        return f"http://127.0.0.1:{self.service.port}"

    def call(self, method: str, path: str, **parts: Any) -> schemathesis.Response:
        """Call the operation with `parts` (path_parameters, body, headers...); the answer must
        conform to the document."""
        headers = {**AUTH, **parts.pop("headers", {})}
        case = SCHEMA[path][method].Case(headers=headers, **parts)
        return case.call_and_validate(base_url=self.url, checks=CHECKS, timeout=REQUEST_TIMEOUT_S)

    def send(self, method: str, path: str, case_path: str, **kwargs: Any) -> requests.Response:
        """A request schemathesis would not make (a body that is no JSON, one too large), its
        answer checked against the operation at `case_path`."""
        kwargs["headers"] = {**AUTH, **kwargs.get("headers", {})}
        response = requests.request(method, self.url + path, timeout=REQUEST_TIMEOUT_S, **kwargs)
        SCHEMA[case_path][method].Case().validate_response(response, checks=CHECKS)
        return response


def wait_for_progress(service: Service, sweep_id: str, timeout_s: float = 60.0) -> None:
    """Poll until the sweep runs a step (GET shows its progress)."""
    deadline = time.monotonic() + timeout_s
    while "progress" not in service.sweep(sweep_id):
        assert time.monotonic() < deadline, f"sweep {sweep_id} never started a step"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The service with a finished sweep and a busy one, allowed to send to a fake server."""
    folder: Path = tmp_path_factory.mktemp("fuzz")
    fake = FakeOpenAI(Behaviour(ttft_s=0.002, gap_s=0.001))
    with ServerThread(fake) as target:
        service = Service(
            results=folder / "results",
            logs=folder / "logs",
            args=("--allowed-targets", target, "--queue-size", str(QUEUE_SIZE),
                  "--max-rate", str(MAX_RATE_RPS), "--max-body-bytes", "65536"),
            env={"LOADGEN_API_TOKEN": TOKEN},
            token=TOKEN,
        )  # fmt: skip
        service.start()
        try:
            finished = service.submit(sweep(target))
            service.wait(finished, {"succeeded"})
            busy = service.submit(sweep(target, rates=(1,), num=5000, trim=0))
            wait_for_progress(service, busy)
            yield Running(service, target, finished, busy)
        finally:
            service.stop()
        # An error that no answer showed (a task of the service that died) is a failure too.
        assert "Traceback" not in service.stderr, service.stderr


@pytest.mark.timeout(120)
def test_real_sweeps_answer_as_documented(running: Running) -> None:
    finished, busy = {"id": running.finished}, {"id": running.busy}
    shown = running.call("GET", "/v1/sweeps/{id}", path_parameters=finished).json()
    assert shown["status"] == "succeeded"
    assert len(shown["steps"]) == 1
    assert "progress" in running.call("GET", "/v1/sweeps/{id}", path_parameters=busy).json()
    for name in ("summary.json", "summary.csv", "requests.jsonl", "report.html"):
        path = f"/v1/sweeps/{{id}}/{name}"
        assert running.call("GET", path, path_parameters=finished).status_code == 200
        # A running sweep writes its requests as they end; its summary once a step ends.
        expected = {200, 404} if name == "requests.jsonl" else {404}
        assert running.call("GET", path, path_parameters=busy).status_code in expected
    # A finished sweep's events are its status alone: the stream ends at once.
    events = running.call("GET", "/v1/sweeps/{id}/events", path_parameters=finished)
    assert events.status_code == 200
    assert (
        running.call("POST", "/v1/sweeps/{id}/cancel", path_parameters=finished).status_code == 409
    )
    assert running.call("DELETE", "/v1/sweeps/{id}", path_parameters=busy).status_code == 409
    listed = running.call("GET", "/v1/sweeps", query={"limit": 1}).json()
    assert listed["total"] == 2
    assert listed["next"] == "/v1/sweeps?limit=1&offset=1"
    assert running.call("GET", "/v1/service").json()["queue_size"] == QUEUE_SIZE


@pytest.mark.timeout(120)
def test_submissions_answer_as_documented(running: Running) -> None:
    good = sweep(running.target, rates=(1,), num=10, trim=0)
    key = {"Idempotency-Key": "fuzz-1"}
    first = running.call("POST", "/v1/sweeps", body=good, headers=key)
    assert first.status_code == 202
    assert running.call("POST", "/v1/sweeps", body=good, headers=key).json() == first.json()
    second = running.call("POST", "/v1/sweeps", body=good)
    assert running.call("POST", "/v1/sweeps", body=good).status_code == 429
    elsewhere = sweep("http://192.0.2.1:8000/v1")
    assert running.call("POST", "/v1/sweeps", body=elsewhere).status_code == 403
    fast = sweep(running.target, rates=(MAX_RATE_RPS * 2,))
    assert running.call("POST", "/v1/sweeps", body=fast).status_code == 422
    assert running.send("POST", "/v1/sweeps", "/v1/sweeps", data=b"{not json").status_code == 400
    large = b'{"x": "' + b"y" * 70_000 + b'"}'
    assert running.send("POST", "/v1/sweeps", "/v1/sweeps", data=large).status_code == 413
    unauthorized = running.send("GET", "/v1/sweeps", "/v1/sweeps", headers={"Authorization": ""})
    assert unauthorized.status_code == 401
    # Queued ones are cancelled at once, and may then go.
    for accepted in (first.json(), second.json()):
        ids = {"id": accepted["id"]}
        cancelled = running.call("POST", "/v1/sweeps/{id}/cancel", path_parameters=ids)
        assert cancelled.json()["status"] == "cancelled"
        assert running.call("DELETE", "/v1/sweeps/{id}", path_parameters=ids).status_code == 204
        assert running.call("GET", "/v1/sweeps/{id}", path_parameters=ids).status_code == 404


@pytest.mark.timeout(120)
def test_a_full_queue_says_when_to_retry(running: Running) -> None:
    good = sweep(running.target, rates=(1,), num=10, trim=0)
    queued = [running.call("POST", "/v1/sweeps", body=good) for _ in range(QUEUE_SIZE)]
    try:
        full = running.call("POST", "/v1/sweeps", body=good)
        assert full.status_code == 429
        assert "retry-after" in full.headers
    finally:
        for accepted in queued:
            ids = {"id": accepted.json()["id"]}
            running.call("POST", "/v1/sweeps/{id}/cancel", path_parameters=ids)
            running.call("DELETE", "/v1/sweeps/{id}", path_parameters=ids)


@pytest.mark.timeout(120)
def test_the_page_login_answers_as_documented(running: Running) -> None:
    no_auth = {"Authorization": ""}
    wrong = running.call("POST", "/v1/session", body={"token": "wrong"}, headers=no_auth)
    assert wrong.status_code == 401
    right = running.call("POST", "/v1/session", body={"token": TOKEN}, headers=no_auth)
    assert right.status_code == 204
    assert "loadgen_token=" in right.headers["set-cookie"][0]
    assert running.call("GET", "/v1/session", headers=no_auth).json()["signed_in"] is False


def test_the_service_serves_the_document_that_is_fuzzed(running: Running) -> None:
    served = requests.get(running.url + "/v1/openapi.json", timeout=REQUEST_TIMEOUT_S)
    assert served.json() == document()


@pytest.mark.timeout(60)
@SCHEMA.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(
    case: schemathesis.Case[Any], running: Running
) -> None:
    case.call_and_validate(
        base_url=running.url, headers=AUTH, checks=CHECKS, timeout=REQUEST_TIMEOUT_S
    )
