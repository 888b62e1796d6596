"""The compose stack under a real Docker engine: docker/compose.yaml and our Dockerfiles, unchanged.

A session fixture brings up the engine (or uses the one DOCKER_HOST names), the Compose v2
plugin and the stand-in base images (tests/stack/_engine.py, _images.py), all cached under
.servers/stack; the project's image is built from docker/loadgen.Dockerfile. Each test then
runs the commands of README "Running the stack" through a `Stack`. Without root (or dockerd)
the tests are skipped with the reason; `./run test` installs what they need as root.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.stack._engine import (
    ROOT,
    Engine,
    EngineUnavailable,
    check_can_run_engine,
    existing_engine,
    start_engine,
    stop_engine,
)
from tests.stack._images import build_image, ensure_stand_ins, image_size_mb, remove_dangling
from tests.stack._stack import FIGURES, Stack

HERE = Path(__file__).parent
COMPOSE = ROOT / "docker" / "compose.yaml"
# The host ports compose.yaml publishes for the services these tests start (Grafana's is not).
PUBLISHED_PORTS = (8002, 8089, 9090)
# A cold cache: stand-in root filesystems and the image build, then the test itself.
_TEST_TIMEOUT_S = 1800


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder runs the stack; the first may build the images (minutes)."""
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.stack)
            item.add_marker(pytest.mark.timeout(_TEST_TIMEOUT_S))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The stack's figures: how long each phase took, how big the images are."""
    if FIGURES:
        terminalreporter.section("stack figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """A Docker engine with the Compose plugin: DOCKER_HOST's, else dockerd started here."""
    existing = existing_engine()
    if existing is not None:
        yield existing
        return
    try:
        check_can_run_engine()
    except EngineUnavailable as reason:
        pytest.skip(f"no Docker engine: {reason}")
    # A short path: the engine's sockets live here, and a socket's path has a length limit.
    run_dir = Path(tempfile.mkdtemp(prefix="lgdocker-"))
    started = time.monotonic()
    running, daemon = start_engine(run_dir)
    FIGURES["engine start (s)"] = f"{time.monotonic() - started:.1f}"
    try:
        yield running
    finally:
        stop_engine(daemon)
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def images(engine: Engine) -> str:
    """The stand-in base images, and loadgen's image built from its Dockerfile: its tag."""
    started = time.monotonic()
    ensure_stand_ins(engine)
    FIGURES["stand-in images ready (s)"] = f"{time.monotonic() - started:.1f}"
    tag = str(yaml.safe_load(COMPOSE.read_text())["x-loadgen"]["image"])
    FIGURES["loadgen image build (s)"] = f"{build_image(engine, 'loadgen.Dockerfile', tag):.1f}"
    FIGURES["loadgen image size (MB)"] = f"{image_size_mb(engine, tag):.0f}"
    remove_dangling(engine)
    return tag


@pytest.fixture
def stack(engine: Engine, images: str, tmp_path: Path) -> Iterator[Stack]:
    """docker/compose.yaml with a fresh token, torn down (volumes too) after the test."""
    for port in PUBLISHED_PORTS:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                pytest.fail(f"port {port} is taken on this host; the stack publishes it")
    running = Stack(engine, tmp_path, token=secrets.token_hex(24))
    running.down()
    try:
        yield running
    finally:
        running.dump_logs()
        running.down()
