"""The built-in simulator in a process of its own: started, reached, stopped, failures told."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import pytest

from loadgen.config import SimConfig
from loadgen.sim.embedded import EmbeddedSim, SimProcessError
from loadgen.sim.settings import resolve
from tests.integration._sim import served


def test_it_serves_from_another_process_and_stops_with_the_run() -> None:
    with EmbeddedSim(resolve(SimConfig()), served(served_model_name="tiny-id")) as sim:
        with urllib.request.urlopen(f"{sim.base_url}/models", timeout=10) as resp:
            models = orjson.loads(resp.read())
        pid = sim.pid
        port = urlsplit(sim.base_url).port
        assert sim.failure() is None
    assert [model["id"] for model in models["data"]] == ["tiny-id"]
    assert pid is not None
    assert pid != os.getpid()
    assert not Path(f"/proc/{pid}").exists()  # the child was stopped and reaped
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", port or 0), timeout=2),
    ):
        pass  # nothing listens there any more


def test_a_server_that_cannot_start_says_why() -> None:
    with (
        pytest.raises(SimProcessError, match=r"the built-in simulator failed: OSError: .*bind"),
        EmbeddedSim(resolve(SimConfig()), served(), host="203.0.113.1"),
    ):
        pass  # not an address of this machine: the child cannot bind it


def test_a_script_calling_run_needs_no_main_guard(tmp_path: Path) -> None:
    script = tmp_path / "plain.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import loadgen
            config = loadgen.RunConfig.model_validate(
                {{"load": {{"rates_rps": [20], "num_requests": 30, "trim": 5}},
                  "output": {{"out_dir": {str(tmp_path / "out")!r}}}}}
            )
            outcome = loadgen.run(config)
            print(outcome.targets[0].steps[0].trimmed.num_ok)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "20"
    assert (tmp_path / "out" / "summary.json").exists()
