"""One compose project of docker/compose.yaml, driven as README "Running the stack" says.

Its settings are docker/.env.example's with the required secrets filled in, written to a file
of the test's own (`--env-file`), so a developer's docker/.env never changes what runs. The
service's API, Prometheus and the simulator are reached through the ports compose publishes.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tests.stack._engine import ROOT, Engine

COMPOSE = ROOT / "docker" / "compose.yaml"
PROJECT = "loadgen"
API = "http://127.0.0.1:8089"
PROMETHEUS = "http://127.0.0.1:9090"
PROFILES = ("gpu", "staging", "cluster")
# Figures printed at the end of the session (conftest's terminal summary).
FIGURES: dict[str, str] = {}
T = TypeVar("T")


class Stack:
    """A compose project of the real files, with a token and settings of its own."""

    def __init__(self, engine: Engine, folder: Path, token: str) -> None:
        self.engine = engine
        self.folder = folder
        self.token = token
        self.settings = {
            "LOADGEN_API_TOKEN": token,
            "GRAFANA_ADMIN_PASSWORD": secrets.token_hex(12),
        }
        self.env_file = folder / "stack.env"
        # Compose files of the test's own, after docker/compose.yaml, and the profiles on.
        self.files: list[Path] = []
        self.profiles: list[str] = []
        self._write_env_file()

    def set(self, **settings: str) -> None:
        """Change settings of docker/.env for the next compose command."""
        self.settings.update(settings)
        self._write_env_file()

    def _write_env_file(self) -> None:
        lines = (ROOT / "docker" / ".env.example").read_text().splitlines()
        unset = dict(self.settings)
        out = []
        for line in lines:
            name = line.split("=", 1)[0]
            out.append(f"{name}={unset.pop(name)}" if name in unset and "=" in line else line)
        out += [f"{name}={value}" for name, value in unset.items()]
        self.env_file.write_text("\n".join(out) + "\n")

    def compose(
        self, *args: str, timeout_s: float = 600, check: bool = True, every_profile: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """`docker compose --env-file ... -f docker/compose.yaml [-f EXTRA] [--profile P] ARGS`."""
        head = ["compose", "--env-file", str(self.env_file), "-f", str(COMPOSE)]
        head += [arg for extra in self.files for arg in ("-f", str(extra))]
        profiles = PROFILES if every_profile else self.profiles
        head += [arg for profile in profiles for arg in ("--profile", profile)]
        return self.engine.docker(*head, *args, timeout_s=timeout_s, check=check)

    def down(self) -> None:
        """`down -v` of every profile: containers, networks and volumes go."""
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "10", every_profile=True)

    def leftovers(self) -> list[str]:
        """Containers, volumes and networks of the project that still exist."""
        label = f"label=com.docker.compose.project={PROJECT}"
        found = []
        for kind in ("container", "volume", "network"):
            listing = ["ls", "--all"] if kind == "container" else ["ls"]
            names = self.engine.docker(kind, *listing, "--quiet", "--filter", label).stdout
            found += [f"{kind} {name}" for name in names.split()]
        return found

    def dump_logs(self) -> None:
        """Every service's log into the test's folder; its tail on stdout (shown on failure)."""
        logs = self.compose("logs", "--no-color", "--timestamps", check=False, every_profile=True)
        (self.folder / "compose.log").write_text(logs.stdout + logs.stderr)
        print(logs.stdout[-6000:], logs.stderr[-2000:])

    def logs(self) -> str:
        """Every service's log so far."""
        return self.compose("logs", "--no-color").stdout

    def exec(self, service: str, *command: str) -> str:
        """Run COMMAND in the service's container; its stdout."""
        return self.compose("exec", "-T", service, *command).stdout

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call the loadgen service's API with the token; the JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{API}{path}", data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def remote(self, *args: str, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
        """`loadgen remote --server http://localhost:8089 ARGS` from the host, as users run it."""
        env = {"PATH": f"{ROOT / '.venv' / 'bin'}:/usr/bin:/bin", "LOADGEN_API_TOKEN": self.token}
        return subprocess.run(
            ["loadgen", "remote", "--server", "http://localhost:8089", *args],
            env=env, capture_output=True, text=True, timeout=timeout_s, check=False, cwd=ROOT,
        )  # fmt: skip

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query of the stack's Prometheus: its result vector."""
        url = f"{PROMETHEUS}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as response:
            answer = json.loads(response.read())
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result


def wait_for(check: Callable[[], T | None], timeout_s: float, what: str, every_s: float = 1) -> T:
    """Poll CHECK until it gives a value (errors of an unready service count as None)."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except (urllib.error.URLError, OSError, KeyError, IndexError, ValueError) as error:
            value, last = None, error
        if value is not None and value is not False:
            return value
        time.sleep(every_s)
    raise AssertionError(f"{what}: not within {timeout_s:g} s (last error: {last!r})")


def health(stack: Stack, service: str) -> str:
    """The service's container health as compose reports it ('healthy', 'starting', ...)."""
    listing = stack.compose("ps", "--all", "--format", "json", service).stdout
    rows = [json.loads(line) for line in listing.splitlines() if line.strip()]
    return " ".join(str(row.get("Health") or row.get("State")) for row in rows)


def holds_secret(text: str, secret: str) -> bool:
    """Whether TEXT holds SECRET, or either half of it (a cut or partly masked leak counts)."""
    half = len(secret) // 2
    return any(part in text for part in (secret[:half], secret[half:]))
