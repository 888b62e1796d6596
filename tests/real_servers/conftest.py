"""Real servers on loopback ports: vLLM's CPU build and transformers serve, on a tiny model.

The servers run with the Python of `.servers/venv` (`./run test` installs it and passes its
path in LOADGEN_SERVERS_PYTHON). Without that variable the tests are skipped, so a plain
`pytest` works anywhere; `./run test` never skips them (LOADGEN_REAL_SERVERS=0 leaves them out).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.real_servers._servers import Server
from tests.support.ports import free_port

HERE = Path(__file__).parent
_READY_TIMEOUT_S = 240.0
_STOP_TIMEOUT_S = 20.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is a real-server test."""
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.real_server)


StartServer = Callable[[str, list[str], dict[str, str], str], Server]


@pytest.fixture(scope="session")
def servers_python() -> Path:
    """The Python of the servers' environment."""
    path = os.environ.get("LOADGEN_SERVERS_PYTHON")
    if not path:
        pytest.skip("real servers not installed: run `./run test` (LOADGEN_SERVERS_PYTHON unset)")
    return Path(path)


@pytest.fixture(scope="session")
def tiny_model(servers_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random Llama and its tokenizer, built once per session."""
    out = tmp_path_factory.mktemp("tiny-llama")
    subprocess.run(
        [str(servers_python), str(HERE / "build_tiny_model.py"), str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


def _wait_healthy(root: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll GET /health until 200; fail with the log's tail if the server dies or hangs."""
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            pytest.fail(f"server exited with {process.returncode} before it was ready:\n{tail}")
        try:
            with urllib.request.urlopen(f"{root}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-3000:]
    pytest.fail(f"server not healthy after {_READY_TIMEOUT_S:g} s:\n{tail}")


@pytest.fixture(scope="session")
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartServer]:
    """A function starting `argv` with `env` on a free port; every server is stopped at the end."""
    running: list[subprocess.Popen[bytes]] = []

    def start(name: str, argv: list[str], env: dict[str, str], model: str) -> Server:
        port = free_port()
        log = tmp_path_factory.mktemp(name) / "server.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [part.replace("{port}", str(port)) for part in argv],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=os.environ | env,
                start_new_session=True,
            )
        running.append(process)
        root = f"http://127.0.0.1:{port}"
        _wait_healthy(root, process, log)
        return Server(f"{root}/v1", model, log)

    yield start
    for process in running:
        process.terminate()
    for process in running:
        try:
            process.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def vllm_server(servers_python: Path, tiny_model: Path, start_server: StartServer) -> Server:
    """vLLM's OpenAI server (CPU build) serving the tiny model as "tiny"."""
    argv = [
        str(servers_python), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(tiny_model), "--served-model-name", "tiny",
        "--dtype", "float32", "--max-model-len", "8192", "--enforce-eager",
        # Each usage says how many prompt tokens came from the prefix cache.
        "--enable-prompt-tokens-details",
        "--host", "127.0.0.1", "--port", "{port}",
    ]  # fmt: skip
    env = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_LOGGING_LEVEL": "WARNING"}
    return start_server("vllm", argv, env, "tiny")


@pytest.fixture(scope="session")
def transformers_server(
    servers_python: Path, tiny_model: Path, start_server: StartServer
) -> Server:
    """`transformers serve --continuous-batching` serving the tiny model (its id is its path)."""
    cli = Path(servers_python).parent / "transformers"
    argv = [
        str(cli), "serve", "--continuous-batching", "--device", "cpu",
        "--cb-block-size", "32", "--cb-num-blocks", "256", "--cb-max-batch-tokens", "512",
        "--host", "127.0.0.1", "--port", "{port}", str(tiny_model),
    ]  # fmt: skip
    server = start_server("transformers", argv, {}, str(tiny_model))
    _warm_up(server)
    return server


def _warm_up(server: Server) -> None:
    """One small completion, so the tests do not pay for the server's first request."""
    body = json.dumps({"model": server.model, "prompt": "warm up", "max_tokens": 2}).encode()
    request = urllib.request.Request(
        f"{server.base_url}/completions", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        response.read()
