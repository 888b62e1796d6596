"""A Docker engine for the stack tests: Debian's dockerd on a private socket, and Compose v2.

dockerd runs as root with the vfs storage driver and neither iptables nor the default bridge
(`--iptables=false --bridge=none`): what works in a container without a kernel's netfilter.
Compose's own bridge networks still link the containers, and published ports reach them
through docker-proxy. Images and layers stay in CACHE between runs (its `docker-data`); the
engine's sockets and state live in a temporary folder and go with it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".servers" / "stack"
# The Compose v2 plugin: Debian's docker-compose package of the release after bookworm (whose
# own package is the old Python 1.x), fetched with apt from that release's package list.
_NEXT_RELEASE_SOURCES = (
    "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
    "http://deb.debian.org/debian trixie main\n"
)
_PLUGIN_IN_DEB = "./usr/libexec/docker/cli-plugins/docker-compose"
_ENGINE_READY_S = 60.0


class EngineUnavailable(Exception):
    """No engine can run here (not root, no dockerd): the stack tests are skipped, saying why."""


@dataclass(frozen=True)
class Engine:
    """A reachable Docker engine: the environment that points the docker CLI at it."""

    env: dict[str, str]

    def docker(
        self, *args: str, timeout_s: float = 600, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run `docker ARGS` against this engine; a failure raises with its output."""
        done = subprocess.run(
            ["docker", *args], env=self.env, capture_output=True, text=True,
            timeout=timeout_s, check=False,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} -> {done.returncode}\n{_tail(done)}")
        return done


def _tail(done: subprocess.CompletedProcess[str], chars: int = 4000) -> str:
    return (done.stdout + done.stderr)[-chars:]


def _run(argv: Sequence[str], timeout_s: float = 600, cwd: Path | None = None) -> None:
    """Run a set-up command; a failure raises with its output (set-up is not optional)."""
    done = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout_s, check=False, cwd=cwd
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} -> {done.returncode}\n{_tail(done)}")


def compose_config_dir() -> Path:
    """A DOCKER_CONFIG folder whose cli-plugins/ holds the Compose v2 plugin, fetched once."""
    config = CACHE / "docker-config"
    plugin = config / "cli-plugins" / "docker-compose"
    if plugin.exists():
        return config
    apt = CACHE / "apt"
    for folder in ("lists/partial", "cache/archives/partial"):
        (apt / folder).mkdir(parents=True, exist_ok=True)
    (apt / "sources.list").write_text(_NEXT_RELEASE_SOURCES)
    options = [
        f"-oDir::Etc::SourceList={apt / 'sources.list'}",
        "-oDir::Etc::SourceParts=/dev/null",
        f"-oDir::State::Lists={apt / 'lists'}",
        f"-oDir::Cache={apt / 'cache'}",
        # apt's sandbox user could not write into the project's folder.
        "-oAPT::Sandbox::User=root",
    ]
    _run(["apt-get", *options, "-qq", "update"])
    for old in apt.glob("docker-compose_*.deb"):
        old.unlink()
    _run(["apt-get", *options, "-qq", "download", "docker-compose"], cwd=apt)
    (deb,) = apt.glob("docker-compose_*.deb")
    plugin.parent.mkdir(parents=True, exist_ok=True)
    fsys = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True)
    binary = subprocess.run(
        ["tar", "-xO", _PLUGIN_IN_DEB], input=fsys.stdout, capture_output=True, check=True
    )
    partial = plugin.with_suffix(".partial")
    partial.write_bytes(binary.stdout)
    partial.chmod(0o755)
    partial.rename(plugin)
    return config


def check_can_run_engine() -> None:
    """Raise EngineUnavailable unless this process can start dockerd and build stand-ins."""
    if os.geteuid() != 0:
        raise EngineUnavailable("not root: dockerd and debootstrap need root")
    for tool in ("dockerd", "docker", "debootstrap", "apt-get"):
        if shutil.which(tool) is None:
            raise EngineUnavailable(f"{tool} not found (`./run test` installs it as root)")


def start_engine(run_dir: Path) -> tuple[Engine, subprocess.Popen[bytes]]:
    """Start dockerd on a socket in run_dir, its images kept in CACHE; wait until it answers."""
    data_root = CACHE / "docker-data"
    data_root.mkdir(parents=True, exist_ok=True)
    socket = run_dir / "docker.sock"
    log = (run_dir / "dockerd.log").open("wb")
    daemon = subprocess.Popen(
        [
            "dockerd",
            "--storage-driver=vfs",
            "--iptables=false",
            "--bridge=none",
            f"--data-root={data_root}",
            f"--exec-root={run_dir / 'exec'}",
            f"--pidfile={run_dir / 'dockerd.pid'}",
            f"--host=unix://{socket}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    env = {**os.environ, "DOCKER_HOST": f"unix://{socket}", "DOCKER_BUILDKIT": "0"}
    env["DOCKER_CONFIG"] = str(compose_config_dir())
    engine = Engine(env)
    deadline = time.monotonic() + _ENGINE_READY_S
    while engine.docker("version", check=False, timeout_s=10).returncode != 0:
        if daemon.poll() is not None or time.monotonic() > deadline:
            daemon.kill()
            tail = (run_dir / "dockerd.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"dockerd did not come up:\n{tail}")
        time.sleep(0.5)
    return engine, daemon


def existing_engine() -> Engine | None:
    """The engine DOCKER_HOST names, if it answers (with the Compose plugin on the side)."""
    if not os.environ.get("DOCKER_HOST") or shutil.which("docker") is None:
        return None
    engine = Engine({**os.environ, "DOCKER_BUILDKIT": "0"})
    if engine.docker("version", check=False, timeout_s=10).returncode != 0:
        return None
    if engine.docker("compose", "version", check=False, timeout_s=10).returncode != 0:
        engine.env["DOCKER_CONFIG"] = str(compose_config_dir())
    return engine


def stop_engine(daemon: subprocess.Popen[bytes]) -> None:
    """Stop dockerd (and its containerd) and wait for it."""
    daemon.terminate()
    try:
        daemon.wait(timeout=60)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()
