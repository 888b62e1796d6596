"""`loadgen serve`: the sweep service as an operator runs it and a client calls it.

Real processes throughout: the service in a subprocess (tests/support/service.py), configured by
its flags and LOADGEN_* variables, and a real aiohttp server (tests/support/fake_openai.py) as the
sweeps' target, which counts what arrives: a sweep the service refuses must send it nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.support.fake_openai import Behaviour, FakeOpenAI, Incoming, ServerThread
from tests.support.service import Event, Reply, Service

TOKEN = "service-test-token-0123"
ALLOWED = "http://127.0.0.1"
FAST = Behaviour(ttft_s=0.002, gap_s=0.001)
# About 0.45 s a request: a sweep of a few dozen lasts seconds, and a cancel finds it running.
SLOW = Behaviour(ttft_s=0.3, gap_s=0.05)
SECRET = "sk-test-SECRET123"
FINISHED = {"succeeded", "failed", "cancelled"}
PROBLEM = "application/problem+json"

Start = Callable[..., Service]


def sweep(
    url: str,
    model: str = "fake-model",
    *,
    rates: tuple[float, ...] = (40,),
    num: int = 40,
    trim: int = 5,
    **target: Any,
) -> dict[str, Any]:
    """A sweep file (as JSON) of small synthetic requests against `url`."""
    return {
        "target": {"base_url": url, "model": model, **target},
        "load": {"rates_rps": list(rates), "num_requests": num, "trim": trim},
        "workload": {"dataset": "synthetic", "input_len": 8, "output_len": 4},
    }


def models_seen(fake: FakeOpenAI) -> list[str]:
    """The model of every completion request the fake received, in arrival order."""
    return [str(incoming.body.get("model")) for incoming in list(fake.seen.requests)]


def assert_problem(reply: Reply, status: int) -> dict[str, Any]:
    """`reply` is an RFC 9457 problem with `status`; its document."""
    assert reply.status == status, reply.body
    assert reply.content_type == PROBLEM
    document: dict[str, Any] = reply.json()
    assert document["status"] == status
    assert document["title"]
    assert document["detail"]
    return document


def wait_until(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    """Poll `condition()` until true; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def listening_addresses(port: int) -> list[str]:
    """The local addresses (hex, as /proc/net shows them) of TCP sockets listening on `port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                found.append(address)
    return found


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Starts services (`start(*flags, env=..., token=...)`); every one is stopped afterwards.

    By default the service gets TOKEN in LOADGEN_API_TOKEN and the client sends it.
    """
    started: list[Service] = []

    def start(
        *args: str,
        env: dict[str, str] | None = None,
        token: str | None = TOKEN,
        results: Path | None = None,
    ) -> Service:
        n = len(started)
        service = Service(
            results=results or tmp_path / f"svc{n}",
            logs=tmp_path / f"logs{n}",
            args=args,
            env={"LOADGEN_API_TOKEN": TOKEN} if env is None else env,
            token=token,
        )
        started.append(service)
        return service.start()

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def fast() -> Iterator[tuple[FakeOpenAI, str]]:
    """A target that answers at once (and accepts the models the tests name)."""
    fake = FakeOpenAI(FAST, models=("fake-model", "m-a", "m-b", "m-c", "m-refused"))
    with ServerThread(fake) as url:
        yield fake, url


@pytest.fixture
def slow() -> Iterator[tuple[FakeOpenAI, str]]:
    """A target that takes about 0.45 s a request."""
    fake = FakeOpenAI(SLOW, models=("m-a", "m-b", "m-c"))
    with ServerThread(fake) as url:
        yield fake, url


# --- routes and status codes -------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_routes_answer_as_documented(start: Start, fast: tuple[FakeOpenAI, str]) -> None:
    fake, url = fast
    svc = start("--allowed-targets", ALLOWED)

    health = svc.call("GET", "/healthz", token=None)
    assert health.status == 200
    assert health.json() == {"status": "ok"}

    # POST: 202, Location, id and status. The first lasts 2 s at least, so the second is still
    # queued when its events are asked for.
    first_file = sweep(url, "m-a", rates=(20,))
    posted = svc.call("POST", "/v1/sweeps", first_file, headers={"Idempotency-Key": "k1"})
    assert posted.status == 202, posted.body
    first = posted.json()
    assert first["status"] == "queued"
    assert posted.headers["Location"] == f"/v1/sweeps/{first['id']}"
    second = svc.submit(sweep(url, "m-b"))

    # While it runs, GET shows its progress.
    def progress_shown() -> bool:
        document = svc.sweep(first["id"])
        return document["status"] == "running" and "progress" in document

    wait_until(progress_shown, 30, "the progress of the running sweep")
    progress = svc.sweep(first["id"])["progress"]
    assert progress["step"] == 0
    assert progress["rate_rps"] == 20
    assert progress["planned"] == 40
    assert {"sent", "done", "errors"} <= progress.keys()
    assert svc.sweep(second)["status"] == "queued"

    # The events of the queued one, to its end (the stream ends with the sweep).
    events = svc.events(second)
    assert events[0] == Event("status", {"status": "queued", "error": None})
    assert [event.name for event in events[1:]] == ["status", "step_start", "step_end", "status"]
    assert events[1].data["status"] == "running"
    assert events[2].data == events[3].data == {"step": 0}
    assert events[-1].data == {"status": "succeeded", "error": None}

    # The finished sweep: its steps, its files.
    document = svc.sweep(second)
    assert document["status"] == "succeeded"
    assert document["error"] is None
    assert document["finished"]
    assert "progress" not in document
    assert "idempotency_key" not in document
    assert len(document["steps"]) == 1
    assert document["steps"][0]["num_sent"] == 40
    assert document["config"]["target"]["model"] == "m-b"
    summary = svc.call("GET", f"/v1/sweeps/{second}/summary.json")
    assert summary.status == 200
    assert summary.content_type == "application/json"
    assert summary.json()["steps"] == document["steps"]
    table = svc.call("GET", f"/v1/sweeps/{second}/summary.csv")
    assert table.status == 200
    assert table.content_type == "text/csv"
    assert len(table.body.decode().strip().splitlines()) == 2  # header and one step
    rows = svc.call("GET", f"/v1/sweeps/{second}/requests.jsonl")
    assert rows.status == 200
    assert rows.content_type == "application/jsonl"
    assert len(rows.body.splitlines()) == 40
    report = svc.call("GET", f"/v1/sweeps/{second}/report.html")
    assert report.status == 200
    assert report.content_type == "text/html"
    assert b"<html" in report.body.lower()
    assert svc.sweep(first["id"])["status"] == "succeeded"
    assert sorted(models_seen(fake)) == ["m-a"] * 40 + ["m-b"] * 40

    # Finished: cancel is 409; the events stream is its status alone.
    assert_problem(svc.call("POST", f"/v1/sweeps/{second}/cancel"), 409)
    assert svc.events(second) == [Event("status", {"status": "succeeded", "error": None})]

    # Unfinished: no results yet (404), DELETE is 409; once cancelled, DELETE is 204.
    third = svc.submit(sweep(url, "m-c", rates=(20,)))  # 2 s at least
    assert_problem(svc.call("GET", f"/v1/sweeps/{third}/summary.json"), 404)
    assert_problem(svc.call("GET", f"/v1/sweeps/{third}/report.html"), 404)
    assert_problem(svc.call("DELETE", f"/v1/sweeps/{third}"), 409)
    cancelled = svc.call("POST", f"/v1/sweeps/{third}/cancel")
    assert cancelled.status == 202
    assert cancelled.json()["status"] in ("cancelled", "cancelling")
    assert svc.wait(third, FINISHED)["status"] == "cancelled"
    assert_problem(svc.call("POST", f"/v1/sweeps/{third}/cancel"), 409)
    assert (svc.results / third).is_dir()
    deleted = svc.call("DELETE", f"/v1/sweeps/{third}")
    assert deleted.status == 204
    assert deleted.body == b""
    assert not (svc.results / third).exists()
    assert_problem(svc.call("GET", f"/v1/sweeps/{third}"), 404)
    assert_problem(svc.call("DELETE", f"/v1/sweeps/{third}"), 404)
    listed = svc.call("GET", "/v1/sweeps").json()
    assert {entry["id"] for entry in listed["sweeps"]} == {first["id"], second}

    # Unknown sweeps, unknown files: 404 on every route.
    unknown = "20200101-000000-0123abcd"
    for method, path in [
        ("GET", f"/v1/sweeps/{unknown}"),
        ("POST", f"/v1/sweeps/{unknown}/cancel"),
        ("DELETE", f"/v1/sweeps/{unknown}"),
        ("GET", f"/v1/sweeps/{unknown}/summary.json"),
        ("GET", f"/v1/sweeps/{unknown}/report.html"),
        ("GET", f"/v1/sweeps/{unknown}/events"),
        ("GET", f"/v1/sweeps/{second}/sweep.json"),  # there, but not served
        ("GET", f"/v1/sweeps/{second}/nothing.txt"),
        ("GET", "/v1/nothing"),
    ]:
        assert_problem(svc.call(method, path), 404)


@pytest.mark.timeout(120)
def test_idempotent_retry_returns_the_same_sweep_and_queues_nothing(
    start: Start, fast: tuple[FakeOpenAI, str]
) -> None:
    fake, url = fast
    svc = start("--allowed-targets", ALLOWED)
    key = {"Idempotency-Key": "ci-job-42"}
    first = svc.call("POST", "/v1/sweeps", sweep(url, "m-a"), headers=key)
    retry = svc.call("POST", "/v1/sweeps", sweep(url, "m-a"), headers=key)
    assert first.status == retry.status == 202
    assert retry.json()["id"] == first.json()["id"]
    assert retry.headers["Location"] == first.headers["Location"]
    sweep_id = first.json()["id"]
    svc.wait(sweep_id, FINISHED)
    # Even once it finished, and even with another body: the first one's sweep, nothing new.
    late = svc.call("POST", "/v1/sweeps", sweep(url, "m-b"), headers=key)
    assert late.status == 202
    assert late.json() == {"id": sweep_id, "status": "succeeded"}
    other = svc.submit(sweep(url, "m-c"), **{"Idempotency-Key": "ci-job-43"})
    assert other != sweep_id
    svc.wait(other, FINISHED)
    assert svc.call("GET", "/v1/sweeps").json()["total"] == 2
    assert len(list(svc.results.iterdir())) == 2
    assert sorted(models_seen(fake)) == ["m-a"] * 40 + ["m-c"] * 40


@pytest.mark.timeout(120)
def test_refused_submissions_are_problems_and_queue_nothing(
    start: Start, fast: tuple[FakeOpenAI, str]
) -> None:
    fake, url = fast
    svc = start(
        "--allowed-targets", ALLOWED, "--max-rate", "100", "--max-body-bytes", "2048",
        "--allowed-key-names", "FAKE_KEY",
    )  # fmt: skip
    good = sweep(url, "m-refused")

    assert_problem(svc.call("POST", "/v1/sweeps", b"not json {"), 400)
    oversized = {**good, "pad": "x" * 4096}
    assert_problem(svc.call("POST", "/v1/sweeps", oversized), 413)

    def invalid(document: Any, field_path: str) -> None:
        problem = assert_problem(svc.call("POST", "/v1/sweeps", document), 422)
        assert any(field_path in error for error in problem["errors"]), problem

    invalid({**good, "load": {**good["load"], "rates_rps": ["fast"]}}, "load.rates_rps")
    invalid({**good, "load": {**good["load"], "num_requests": 0}}, "load.num_requests")
    invalid({**good, "bogus": 1}, "bogus")
    invalid([1, 2], "body")
    # Fields the service refuses: they would read its files or open its ports.
    invalid({**good, "output": {"out_dir": "/tmp/elsewhere"}}, "output.out_dir")
    invalid({**good, "metrics": {"port": 9999}}, "metrics.port")
    invalid({**good, "workload": {"dataset": "/etc/passwd"}}, "workload.dataset")
    trace = {"arrival": "trace", "trace": "/etc/passwd", "num_requests": 40, "trim": 5}
    invalid({**good, "load": trace}, "load.trace")
    invalid({**good, "cluster": {"processes": 4}}, "cluster")
    # Rates over --max-rate (inf, all at once, is held to the ceiling instead).
    invalid({**good, "load": {**good["load"], "rates_rps": [50, 101]}}, "load.rates_rps")

    # Targets off the allow-list (the fake itself under another name or scheme) and key names
    # off the allowed list: 403.
    port = url.split(":")[2].split("/")[0]
    for elsewhere in [
        f"http://localhost:{port}/v1",
        f"https://127.0.0.1:{port}/v1",
        "http://127.0.0.1.nip.io/v1",
        "http://example.com/http://127.0.0.1/v1",
    ]:
        problem = assert_problem(svc.call("POST", "/v1/sweeps", sweep(elsewhere)), 403)
        assert "target.base_url" in problem["detail"]
    targets = [
        {"name": "a", "base_url": url, "model": "m-refused"},
        {"name": "b", "base_url": f"http://localhost:{port}/v1", "model": "m-refused"},
    ]
    two = {"targets": targets, "load": good["load"], "workload": good["workload"]}
    assert "targets[1]" in assert_problem(svc.call("POST", "/v1/sweeps", two), 403)["detail"]
    keyed = sweep(url, "m-refused", api_key_env="OTHER_KEY")
    assert "OTHER_KEY" in assert_problem(svc.call("POST", "/v1/sweeps", keyed), 403)["detail"]

    # Paging out of range: 422.
    for query in ("limit=0", "limit=101", "offset=-1", "limit=ten"):
        assert_problem(svc.call("GET", f"/v1/sweeps?{query}"), 422)

    # Nothing was queued, nothing written, nothing sent; an allowed sweep runs (after all those,
    # were any queued) and is all the fake ever sees.
    assert svc.call("GET", "/v1/sweeps").json() == {"sweeps": [], "total": 0, "next": None}
    assert list(svc.results.iterdir()) == []
    allowed = svc.submit(sweep(url, "m-a"))
    assert svc.wait(allowed, FINISHED)["status"] == "succeeded"
    assert models_seen(fake) == ["m-a"] * 40
    assert len(fake.seen.models_headers) == 1  # the allowed sweep's check of the server


@pytest.mark.timeout(120)
def test_paging_lists_every_sweep_once_newest_first(
    start: Start, fast: tuple[FakeOpenAI, str]
) -> None:
    _, url = fast
    svc = start("--allowed-targets", ALLOWED)
    ids = [svc.submit(sweep(url, "m-a", num=20)) for _ in range(5)]
    seen: list[dict[str, Any]] = []
    path: str | None = "/v1/sweeps?limit=2"
    pages = 0
    while path is not None:
        page = svc.call("GET", path).json()
        assert page["total"] == 5
        assert len(page["sweeps"]) == (2 if pages < 2 else 1)
        seen += page["sweeps"]
        path, pages = page["next"], pages + 1
    assert pages == 3
    assert sorted(entry["id"] for entry in seen) == sorted(ids)
    # Newest first, to the second (the order within a second is another test's).
    stamps = [entry["created"][:19] for entry in seen]
    assert stamps == sorted(stamps, reverse=True)
    beyond = svc.call("GET", "/v1/sweeps?limit=2&offset=5").json()
    assert beyond == {"sweeps": [], "total": 5, "next": None}
    whole = svc.call("GET", "/v1/sweeps").json()
    assert whole["next"] is None
    assert len(whole["sweeps"]) == 5
    for sweep_id in ids:
        svc.wait(sweep_id, FINISHED)


@pytest.mark.timeout(120)
def test_sweeps_of_one_second_are_listed_newest_first(
    start: Start, fast: tuple[FakeOpenAI, str]
) -> None:
    _, url = fast
    svc = start("--allowed-targets", ALLOWED, "--queue-size", "16")
    # Eight submissions early in one second: by chance in order once in 40320.
    while time.time() % 1 > 0.2:
        time.sleep(0.01)
    ids = [svc.submit(sweep(url, "m-a", rates=(20,))) for _ in range(8)]
    listed = [entry["id"] for entry in svc.call("GET", "/v1/sweeps").json()["sweeps"]]
    for sweep_id in ids:
        svc.call("POST", f"/v1/sweeps/{sweep_id}/cancel")
    assert listed == ids[::-1]


# --- the queue ---------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_one_sweep_runs_at_a_time_and_cancel_stops_queued_and_running_ones(
    start: Start, slow: tuple[FakeOpenAI, str]
) -> None:
    fake, url = slow
    svc = start(env={"LOADGEN_API_TOKEN": TOKEN, "LOADGEN_ALLOWED_TARGETS": ALLOWED})
    a = svc.submit(sweep(url, "m-a", rates=(20,), num=60))  # 3 s of sending, at least
    b = svc.submit(sweep(url, "m-b", rates=(20,), num=20))
    c = svc.submit(sweep(url, "m-c", rates=(40,), num=20))
    svc.wait(a, {"running"})
    assert svc.sweep(b)["status"] == svc.sweep(c)["status"] == "queued"

    # A queued sweep is cancelled at once, and never runs.
    queued = svc.call("POST", f"/v1/sweeps/{b}/cancel")
    assert queued.status == 202
    assert queued.json() == {"id": b, "status": "cancelled"}

    # The running one drains: cancelling, then cancelled.
    wait_until(lambda: models_seen(fake).count("m-a") >= 10, 30, "requests of the first sweep")
    stopping = svc.call("POST", f"/v1/sweeps/{a}/cancel")
    assert stopping.status == 202
    assert stopping.json() == {"id": a, "status": "cancelling"}
    statuses: list[set[str]] = []

    def c_done() -> bool:
        listed = svc.call("GET", "/v1/sweeps").json()["sweeps"]
        by_id = {entry["id"]: entry["status"] for entry in listed}
        statuses.append({sweep_id for sweep_id, status in by_id.items() if status in
                         ("running", "cancelling")})  # fmt: skip
        return by_id[c] in FINISHED

    wait_until(c_done, 60, "the third sweep")
    assert all(len(active) <= 1 for active in statuses), statuses

    stopped = svc.sweep(a)
    assert stopped["status"] == "cancelled"
    assert stopped["error"] is None
    # Its results so far are kept: the step it was cut in, with what it sent.
    assert len(stopped["steps"]) == 1
    sent_a = models_seen(fake).count("m-a")
    assert 10 <= sent_a < 60
    assert stopped["steps"][0]["num_sent"] == sent_a
    assert svc.call("GET", f"/v1/sweeps/{a}/requests.jsonl").status == 200

    never = svc.sweep(b)
    assert never["status"] == "cancelled"
    assert never["steps"] == []
    assert sorted(path.name for path in (svc.results / b).iterdir()) == ["sweep.json"]

    last = svc.sweep(c)
    assert last["status"] == "succeeded"
    assert last["steps"][0]["num_sent"] == 20
    # One at a time: the fake saw the first sweep's requests, then the third's, never mixed.
    assert models_seen(fake) == ["m-a"] * sent_a + ["m-c"] * 20


@pytest.mark.timeout(120)
def test_a_full_queue_answers_429(start: Start, slow: tuple[FakeOpenAI, str]) -> None:
    fake, url = slow
    svc = start("--allowed-targets", ALLOWED, "--queue-size", "1")
    running = svc.submit(sweep(url, "m-a", rates=(20,), num=40))
    svc.wait(running, {"running"})
    waiting = svc.submit(sweep(url, "m-b", rates=(20,), num=20))
    full = assert_problem(svc.call("POST", "/v1/sweeps", sweep(url, "m-c")), 429)
    assert "queue" in full["title"].lower()
    assert svc.call("GET", "/v1/sweeps").json()["total"] == 2
    for sweep_id in (waiting, running):
        assert svc.call("POST", f"/v1/sweeps/{sweep_id}/cancel").status == 202
    for sweep_id in (waiting, running):
        assert svc.wait(sweep_id, FINISHED)["status"] == "cancelled"
    assert "m-c" not in models_seen(fake)


@pytest.mark.timeout(120)
def test_a_cancelled_queued_sweep_frees_its_place(
    start: Start, slow: tuple[FakeOpenAI, str]
) -> None:
    _, url = slow
    svc = start("--allowed-targets", ALLOWED, "--queue-size", "1")
    running = svc.submit(sweep(url, "m-a", rates=(20,), num=40))
    svc.wait(running, {"running"})
    waiting = svc.submit(sweep(url, "m-b", rates=(20,), num=20))
    assert svc.call("POST", f"/v1/sweeps/{waiting}/cancel").json()["status"] == "cancelled"
    try:
        again = svc.call("POST", "/v1/sweeps", sweep(url, "m-c", rates=(20,), num=20))
        assert again.status == 202, again.body
    finally:
        for entry in svc.call("GET", "/v1/sweeps").json()["sweeps"]:
            svc.call("POST", f"/v1/sweeps/{entry['id']}/cancel")


@pytest.mark.timeout(150)
def test_a_restart_fails_the_cut_sweep_keeps_its_steps_and_runs_the_queued_one(
    start: Start, tmp_path: Path
) -> None:
    fake = FakeOpenAI(Behaviour(ttft_s=0.05, gap_s=0.01), models=("m-a", "m-b"))
    with ServerThread(fake) as url:
        svc = start("--allowed-targets", ALLOWED)
        cut = svc.submit(sweep(url, "m-a", rates=(40, 20), num=40))  # 1 s, then 2 s
        queued = svc.submit(sweep(url, "m-b", rates=(40,), num=30), **{"Idempotency-Key": "k"})
        # Header values are never written down: this one cannot be run again after a restart.
        header = svc.submit(sweep(url, "m-b", rates=(40,), num=30, headers={"X-Team": "blue"}))

        def first_step_done() -> bool:
            document = svc.sweep(cut)
            return len(document["steps"]) >= 1 and document.get("progress", {}).get("step") == 1

        wait_until(first_step_done, 60, "the first step of the sweep")
        before = svc.sweep(cut)
        assert before["status"] == "running"
        assert len(before["steps"]) == 1
        svc.kill()
        svc.start()

        after = svc.sweep(cut)
        assert after["status"] == "failed"
        assert "restart" in after["error"]
        assert after["finished"]
        assert after["steps"] == before["steps"]
        assert svc.call("GET", f"/v1/sweeps/{cut}/report.html").status == 200
        assert_problem(svc.call("POST", f"/v1/sweeps/{cut}/cancel"), 409)

        retry = svc.call("POST", "/v1/sweeps", sweep(url, "m-b"), headers={"Idempotency-Key": "k"})
        assert retry.status == 202
        assert retry.json()["id"] == queued

        done = svc.wait(queued, FINISHED)
        assert done["status"] == "succeeded", done
        assert done["steps"][0]["num_sent"] == 30
        lost = svc.wait(header, FINISHED)
        assert lost["status"] == "failed"
        assert "restart" in lost["error"]
        assert lost["steps"] == []
        # The queued sweep ran after the restart, alone; the cut one never ran again.
        seen = models_seen(fake)
        assert seen.count("m-b") == 30
        assert seen.index("m-b") > max(i for i, model in enumerate(seen) if model == "m-a")
        assert seen.count("m-a") < 40 + 40
        assert not any("X-Team" in incoming.headers for incoming in fake.seen.requests)
        assert svc.call("GET", "/v1/sweeps").json()["total"] == 3


@pytest.mark.timeout(90)
def test_a_boot_sweep_is_queued_when_allowed_and_refused_when_not(
    start: Start, fast: tuple[FakeOpenAI, str], tmp_path: Path
) -> None:
    fake, url = fast
    allowed, refused = tmp_path / "allowed.toml", tmp_path / "refused.toml"
    for path, base_url, model in [
        (allowed, url, "m-a"),
        (refused, "http://10.1.2.3:8000/v1", "m-b"),
    ]:
        path.write_text(
            f'[target]\nbase_url = "{base_url}"\nmodel = "{model}"\n'
            "[load]\nrates_rps = [40]\nnum_requests = 20\ntrim = 2\n"
            '[workload]\ndataset = "synthetic"\ninput_len = 8\noutput_len = 4\n'
        )
    svc = start("--allowed-targets", ALLOWED, "--boot-sweep", str(allowed))
    listed = svc.call("GET", "/v1/sweeps").json()["sweeps"]
    assert len(listed) == 1
    boot = listed[0]["id"]
    assert f"boot sweep {allowed}: {boot}" in svc.stderr
    assert svc.wait(boot, FINISHED)["status"] == "succeeded"
    assert models_seen(fake) == ["m-a"] * 20

    other = start("--allowed-targets", ALLOWED, "--boot-sweep", str(refused))
    assert other.call("GET", "/v1/sweeps").json()["total"] == 0
    assert f"boot sweep {refused}: refused" in other.stderr
    assert list(other.results.iterdir()) == []


# --- security ----------------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_tokens_from_the_variable_and_the_file_and_nothing_else(
    start: Start, tmp_path: Path
) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text("file-token-one\n\nfile-token-two\n")
    old, new = "rotating-old-token", "rotating-new-token-longer"
    svc = start("--api-token-file", str(token_file), env={"LOADGEN_API_TOKEN": f"{old}, {new}"},
                token=None)  # fmt: skip
    for token in (old, new, "file-token-one", "file-token-two"):
        assert svc.call("GET", "/v1/sweeps", token=token).status == 200, token

    sweep_id = "20200101-000000-0123abcd"
    routes = [
        ("GET", "/v1/sweeps"),
        ("POST", "/v1/sweeps"),
        ("GET", f"/v1/sweeps/{sweep_id}"),
        ("POST", f"/v1/sweeps/{sweep_id}/cancel"),
        ("DELETE", f"/v1/sweeps/{sweep_id}"),
        ("GET", f"/v1/sweeps/{sweep_id}/summary.json"),
        ("GET", f"/v1/sweeps/{sweep_id}/report.html"),
        ("GET", f"/v1/sweeps/{sweep_id}/events"),
    ]
    for method, path in routes:
        refused = svc.call(method, path, sweep(ALLOWED) if method == "POST" else None, token=None)
        assert_problem(refused, 401)
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    for wrong in [
        "rotating-old-tokeX",  # the length of a good one
        "x",
        new + "-and-more",
        old[:-1],
        f"{old},{new}",
    ]:
        assert_problem(svc.call("GET", "/v1/sweeps", token=wrong), 401)
    for header in (f"Basic {old}", old, f"Token {old}"):
        refused = svc.call("GET", "/v1/sweeps", token=None, headers={"Authorization": header})
        assert_problem(refused, 401)
    assert svc.call("GET", "/healthz", token=None).status == 200
    assert svc.call("GET", "/healthz", token="wrong").status == 200
    assert svc.call("GET", "/v1/sweeps", token=new).json()["total"] == 0
    for secret in (old, new, "file-token-one"):
        assert secret not in svc.stderr


@pytest.mark.timeout(90)
def test_ids_that_are_paths_are_404_and_touch_nothing(
    start: Start, fast: tuple[FakeOpenAI, str], tmp_path: Path
) -> None:
    _, url = fast
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "summary.json").write_text('{"steps": ["canary"]}')
    svc = start("--allowed-targets", ALLOWED, results=tmp_path / "svc")
    real = svc.submit(sweep(url, "m-a"))
    svc.wait(real, FINISHED)
    for sweep_id in [
        "..%2F..%2Fetc",
        "..%2Fcanary",
        "%2E%2E",
        "..",
        "20200101-000000-0123abcd%2F..%2F..%2Fcanary",
        "20200101-000000-0123ABCD",
        f"{real}%00",
        f"{real}x",
    ]:
        for method, suffix in [("GET", ""), ("DELETE", ""), ("POST", "/cancel"),
                               ("GET", "/summary.json"), ("GET", "/report.html"),
                               ("GET", "/events")]:  # fmt: skip
            assert_problem(svc.call(method, f"/v1/sweeps/{sweep_id}{suffix}"), 404)
    for path in [
        "/v1/sweeps/../x",
        "/v1/sweeps/../../canary/summary.json",
        f"/v1/sweeps/{real}/..%2F..%2Fcanary%2Fsummary.json",
        f"/v1/sweeps/{real}/sweep.json",
    ]:
        assert_problem(svc.call("GET", path), 404)
    assert (canary / "summary.json").exists()
    assert svc.sweep(real)["status"] == "succeeded"


@pytest.mark.timeout(60)
def test_without_a_token_it_listens_on_loopback_only(start: Start) -> None:
    svc = start("--host", "0.0.0.0", env={}, token=None)
    assert "listening on 127.0.0.1 only" in svc.stderr
    assert f"http://127.0.0.1:{svc.port}" in svc.stderr
    assert "0.0.0.0" not in svc.stderr
    assert listening_addresses(svc.port) == ["0100007F"]  # 127.0.0.1, and no other address
    assert svc.call("GET", "/v1/sweeps").status == 200  # no token asked for


@pytest.mark.timeout(60)
def test_with_a_token_it_listens_where_it_is_told(start: Start) -> None:
    svc = start("--host", "0.0.0.0")
    assert "listening on 127.0.0.1 only" not in svc.stderr
    assert listening_addresses(svc.port) == ["00000000"]


@pytest.mark.timeout(120)
def test_the_api_key_is_sent_to_the_target_and_shown_nowhere(start: Start, tmp_path: Path) -> None:
    def script(incoming: Incoming) -> Behaviour:
        # Every fifth request, and every one of m-b, is a 401 echoing the key back.
        echo = incoming.body.get("model") == "m-b" or incoming.number % 5 == 0
        return Behaviour(fault="http_401_echo") if echo else FAST

    fake = FakeOpenAI(script=script, models=("m-a", "m-b"))
    env = {
        "LOADGEN_API_TOKEN": TOKEN,
        "LOADGEN_ALLOWED_TARGETS": ALLOWED,
        "LOADGEN_ALLOWED_KEY_NAMES": "FAKE_KEY,UNSET_KEY",
        "FAKE_KEY": SECRET,
    }
    with ServerThread(fake) as url:
        svc = start(env=env)
        refused = svc.call("POST", "/v1/sweeps", sweep(url, "m-a", api_key_env="FAKE_KEYS"))
        assert_problem(refused, 403)
        mixed = svc.submit(sweep(url, "m-a", api_key_env="FAKE_KEY"))
        echoed = svc.submit(sweep(url, "m-b", api_key_env="FAKE_KEY", num=20))
        events = svc.events(mixed) + svc.events(echoed)
        assert events
        for sweep_id in (mixed, echoed):
            document = svc.wait(sweep_id, FINISHED)
            assert document["config"]["target"]["api_key_env"] == "FAKE_KEY"
            for name in ("summary.json", "summary.csv", "requests.jsonl", "report.html"):
                assert svc.call("GET", f"/v1/sweeps/{sweep_id}/{name}").status == 200
        for path in ("/v1/sweeps", "/v1/workers", "/v1/service", "/metrics", "/"):
            assert svc.call("GET", path).status == 200, path
        assert b"loadgen_requests_total" in svc.replies[-2].body  # /metrics of both sweeps
        svc.call("POST", f"/v1/sweeps/{mixed}/cancel")
        svc.stop()

    # The target got the key, as a bearer token, on every request.
    assert len(fake.seen.requests) == 60
    assert {incoming.headers.get("Authorization") for incoming in fake.seen.requests} == {
        f"Bearer {SECRET}"
    }
    assert any(b"401" in reply.body or b"Unauthorized" in reply.body for reply in svc.replies)
    # And nothing else has it: no reply, no log line, no file of the service.
    leaks = [f"reply {reply.status}: {reply.body[:200]!r}" for reply in svc.replies
             if SECRET.encode() in reply.body]  # fmt: skip
    leaks += ["stdout/stderr"] if SECRET.encode() in svc.log_bytes() else []
    leaks += [
        str(path)
        for path in svc.results.rglob("*")
        if path.is_file() and SECRET.encode() in path.read_bytes()
    ]
    assert leaks == []
    assert len(svc.replies) > 10


@pytest.mark.timeout(120)
def test_a_burst_is_held_to_the_ceiling_and_the_results_say_so(
    start: Start, fast: tuple[FakeOpenAI, str]
) -> None:
    fake, url = fast
    svc = start("--allowed-targets", ALLOWED, "--max-rate", "20")
    # 50 requests at once (inf) under a ceiling of 20 starts a second: 20 now, 20 a second
    # later, 10 a second after that.
    burst = sweep(url, "m-a", num=50)
    burst["load"]["rates_rps"] = ["inf"]
    done = svc.wait(svc.submit(burst), FINISHED)
    assert done["status"] == "succeeded", done
    assert done["config"]["load"]["max_start_rate_rps"] == 20
    (step,) = done["steps"]
    assert step["capped_sends"] == 30
    assert step["duration_s"] >= 2.0 - 0.05
    assert not step["client_saturated"]
    assert models_seen(fake) == ["m-a"] * 50


class Redirecting(FakeOpenAI):
    """Answers every completion with a 307 to `location`."""

    def __init__(self, location: str) -> None:
        super().__init__(FAST, models=("m-a",))
        self.location = location

    async def _answer(self, request: web.Request, endpoint: str) -> web.StreamResponse:
        self.seen.requests.append(Incoming(len(self.seen.requests), endpoint, {}, {}, None))
        raise web.HTTPTemporaryRedirect(self.location)


@pytest.mark.timeout(120)
def test_a_redirect_off_the_allow_list_is_not_followed(
    start: Start, fast: tuple[FakeOpenAI, str]
) -> None:
    elsewhere, url = fast
    # The same server under a name the allow-list does not hold.
    off_list = url.replace("127.0.0.1", "localhost") + "/completions"
    redirecting = Redirecting(off_list)
    with ServerThread(redirecting) as redirecting_url:
        svc = start("--allowed-targets", ALLOWED)
        done = svc.wait(svc.submit(sweep(redirecting_url, "m-a", num=20)), FINISHED)
    (step,) = done["steps"]
    assert step["errors_by_kind"] == {"http_3xx": 10}
    assert len(redirecting.seen.requests) == 20
    assert elsewhere.seen.requests == []
    rows = svc.call("GET", f"/v1/sweeps/{done['id']}/requests.jsonl").body.splitlines()
    assert all(b"not followed" in row for row in rows)
