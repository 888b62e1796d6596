"""`loadgen serve`'s web page, driven in Debian's headless Chromium (Playwright).

Real processes throughout: the simulator (`loadgen sim`) as the target, the service in a
subprocess with a token, and a real browser that signs in, starts a sweep from the form, watches
it run, and opens its report. Screenshots go to the test's folder and to /tmp/page-shots/.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.service import Service, running
from tests.support.sim_process import sim_process

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium not installed")

TOKEN = "page-test-token-0123456789"
SHOTS = Path("/tmp/page-shots")
# Ten times faster than the modelled A100: a step of 40 short requests lasts a second or two.
SIM_TIME_SCALE = "0.1"
SWEEP_TIMEOUT_MS = 40_000
GRAFANA = "http://grafana.example.internal:3000/dashboards"


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`loadgen sim` on a free loopback port; its base URL (with /v1)."""
    log = tmp_path_factory.mktemp("sim") / "sim.log"
    with sim_process(float(SIM_TIME_SCALE), log) as url:
        yield url


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, simulator: str) -> Iterator[Service]:
    """The service with a token; it allows the simulator and a host pattern."""
    folder = tmp_path_factory.mktemp("service")
    yield from running(
        Service(
            results=folder / "results",
            logs=folder / "logs",
            args=("--allowed-targets", f"{simulator},*.staging.internal", "--grafana-url", GRAFANA),
            env={"LOADGEN_API_TOKEN": TOKEN},
            token=TOKEN,
        )
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium (Debian's), driven by Playwright."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, service: Service) -> Iterator[Page]:
    """A fresh browser context (no cookie) on the page; its script must raise nothing."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.goto(f"http://127.0.0.1:{service.port}/")
    yield opened
    context.close()
    assert errors == []


def shoot(page: Page, tmp_path: Path, name: str) -> None:
    """A full-page screenshot in the test's folder, copied to /tmp/page-shots/."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / path.name)


def sign_in(page: Page, token: str) -> None:
    """Type `token` in the sign-in form and send it."""
    expect(page.locator("#login")).to_be_visible()
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")


@pytest.mark.timeout(60)
def test_a_wrong_token_is_refused_on_the_page(page: Page, tmp_path: Path) -> None:
    sign_in(page, "not-the-token")
    error = page.locator("#login-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("not one of the service's API tokens")
    expect(page.locator("#app")).to_be_hidden()
    assert page.context.cookies() == []
    shoot(page, tmp_path, "login-refused")


@pytest.mark.timeout(60)
def test_a_refused_sweep_shows_the_problem(page: Page, tmp_path: Path) -> None:
    sign_in(page, TOKEN)
    expect(page.locator("#app")).to_be_visible()
    page.select_option("#target-select", "")  # "Other URL…"
    page.fill("#target-url", "http://elsewhere.example.com/v1")
    page.click("#start")
    error = page.locator("#submit-error")
    expect(error).to_contain_text("target not allowed")
    expect(error).to_contain_text("not on the service's allow-list")
    expect(page.locator("#submit-ok")).to_be_hidden()
    shoot(page, tmp_path, "sweep-refused")

    page.click("#sign-out")
    expect(page.locator("#login")).to_be_visible()
    assert page.context.cookies() == []


@pytest.mark.timeout(90)
def test_a_sweep_started_from_the_form_runs_to_its_report(
    page: Page, simulator: str, service: Service, tmp_path: Path
) -> None:
    sign_in(page, TOKEN)
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#grafana")).to_have_attribute("href", GRAFANA)
    (cookie,) = page.context.cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == (
        "loadgen_token", True, "Strict"
    )  # fmt: skip

    page.select_option("#target-select", simulator)
    page.select_option("#workload", "s2s")
    page.fill("#rates", "20,40")
    page.fill("#num-requests", "40")
    page.fill("#trim", "5")
    shoot(page, tmp_path, "form")
    page.click("#start")

    expect(page.locator("#submit-ok")).to_contain_text("Queued sweep")
    found = re.search(r"\d{8}-\d{6}-[0-9a-f]{8}", page.text_content("#submit-ok") or "")
    assert found is not None
    sweep_id = found.group()
    row = page.locator(f'#sweeps tbody tr[data-id="{sweep_id}"]')
    expect(row).to_have_count(1)

    # Live progress from the events stream: a step in progress, then its result.
    progress = page.locator("#progress-text")
    expect(progress).to_have_text(
        re.compile(r"Step [12] of 2 at (20|40) req/s: sent [1-9]\d* / 40")
    )
    shoot(page, tmp_path, "running")
    status = page.locator("#watch-status")
    expect(status).to_have_text("succeeded", timeout=SWEEP_TIMEOUT_MS)
    steps = page.locator("#steps tbody tr")
    expect(steps).to_have_count(2)
    expect(steps.locator("td:first-child")).to_have_text(["20", "40"])
    expect(page.locator("#progress")).to_be_hidden()
    expect(row).to_have_attribute("data-status", "succeeded", timeout=10_000)
    # What the page shows is what the API holds.
    assert service.sweep(sweep_id)["status"] == "succeeded"
    shoot(page, tmp_path, "finished")

    with page.context.expect_page() as opened:
        row.locator("a.report").click()
    report = opened.value
    report.wait_for_load_state()
    assert report.title() == "loadgen report"
    expect(report.locator("h1")).to_have_text("loadgen report")
    expect(report.locator("table.steps tr:has(td)")).to_have_count(2)
    shoot(report, tmp_path, "report")


@pytest.mark.timeout(60)
def test_what_the_server_says_is_shown_as_text_never_as_markup(
    page: Page, simulator: str, tmp_path: Path
) -> None:
    markup = '<img src="x" id="injected">'
    sign_in(page, TOKEN)
    page.select_option("#target-select", simulator)
    page.fill("#model", markup)
    page.fill("#rates", "40")
    page.fill("#num-requests", "12")
    page.fill("#trim", "1")
    page.click("#start")
    expect(page.locator("#watch-status")).to_have_text(
        re.compile("failed|succeeded"), timeout=SWEEP_TIMEOUT_MS
    )
    expect(page.locator("#watch-config")).to_contain_text(markup)
    expect(page.locator("#injected")).to_have_count(0)
    # The model is unknown to the simulator: every request fails, and the step says so.
    expect(page.locator("#steps tbody td.bad")).to_have_text("10")
    shoot(page, tmp_path, "markup-as-text")
