"""The GPU server recipes in servers/: they cannot start here, but their commands can be checked."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "servers" / "mii" / "launch.py"
SERVE = ROOT / "servers" / "vllm" / "serve.sh"


def test_mii_launcher_builds_the_server_command_from_flags_and_env() -> None:
    env = os.environ | {"MODEL": "/models/llama", "PORT": "9001"}
    argv = [sys.executable, str(LAUNCH), "--dry-run", "--max-length", "2048"]
    argv += ["--", "--replica-num", "2"]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
    command = shlex.split(done.stdout)
    assert command[1:3] == ["-m", "mii.entrypoints.openai_api_server"]
    flags = dict(zip(command[3:-2:2], command[4:-2:2], strict=True))
    assert flags["--model"] == "/models/llama"
    assert flags["--port"] == "9001"
    assert flags["--max-length"] == "2048"
    assert command[-2:] == ["--replica-num", "2"]


def test_mii_launcher_without_mii_fails_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, str(LAUNCH)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "pip install" in done.stderr
    assert "Traceback" not in done.stderr


def test_mii_launcher_rejects_a_bad_port() -> None:
    env = os.environ | {"PORT": "http"}
    done = subprocess.run(
        [sys.executable, str(LAUNCH), "--dry-run"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "not an integer" in done.stderr


def test_vllm_script_passes_the_benchmark_flags_to_vllm_serve(tmp_path: Path) -> None:
    # A stand-in `vllm` that prints its arguments, first on PATH.
    fake = tmp_path / "vllm"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    fake.chmod(0o755)
    env = os.environ | {"PATH": f"{tmp_path}:{os.environ['PATH']}", "MAX_NUM_SEQS": "64"}
    done = subprocess.run(
        ["bash", str(SERVE), "--tensor-parallel-size", "2"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    args = done.stdout.splitlines()
    assert args[:2] == ["serve", "meta-llama/Llama-2-7b-chat-hf"]
    assert args[args.index("--max-num-seqs") + 1] == "64"
    assert "--no-enable-prefix-caching" in args
    assert args[-2:] == ["--tensor-parallel-size", "2"]
