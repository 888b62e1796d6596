"""The cluster's deployment files (compose `cluster` profile, docker/k8s/), checked offline.

kubernetes-validate checks the manifests strictly against the Kubernetes 1.33 schemas it
bundles, and kustomization.yaml lists every one of them; the master, its Service and the workers
agree on names, labels and ports in Kubernetes; in compose, the workers join the loadgen service
(`loadgen serve`) on its workers port with its token; the cluster sweep files follow `loadgen
config schema` and load with loadgen's own loader, and compose's passes the service's own
submission check; every `docker compose`, `kubectl` and `loadgen remote` line of the README's
Scaling out section names files, profiles, services and objects that exist.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from loadgen.config import RunConfig, resolve
from loadgen.config.files import read_document
from loadgen.config.service import TOKEN_ENV, TOKEN_FILE_ENV
from loadgen.config.sources import data_source
from loadgen.service.sweeps import checked_config
from tests.integration.test_docker import (
    TOKEN_SECRET,
    composed_env,
    secret_path,
    service_limits,
    service_settings,
)

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
K8S = DOCKER / "k8s"
KUSTOMIZATION = K8S / "kustomization.yaml"
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
KUBERNETES_VERSION = "1.33"
MASTER, WORKER = "loadgen-master", "loadgen-worker"
SERVICE = "loadgen"  # compose's `loadgen serve`, which the workers join
CLUSTER_KEYS = {
    "processes",
    "expect_workers",
    "worker_timeout_s",
    "master_bind_host",
    "master_bind_port",
    "on_worker_loss",
}
KUBECTL_KINDS = {
    "job": "Job",
    "deployment": "Deployment",
    "deploy": "Deployment",
    "service": "Service",
    "svc": "Service",
    "configmap": "ConfigMap",
    "cm": "ConfigMap",
}


# --- reading the files ---------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    """docker/compose.yaml, anchors resolved."""
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def services() -> dict[str, Any]:
    """The services of docker/compose.yaml."""
    found: dict[str, Any] = compose()["services"]
    return found


def resource_files() -> list[Path]:
    """The Kubernetes manifests of docker/k8s/ (all its YAML but kustomization.yaml)."""
    return [path for path in sorted(K8S.glob("*.yaml")) if path != KUSTOMIZATION]


@cache
def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    """Every object of docker/k8s/ by (kind, name)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in resource_files():
        for document in yaml.safe_load_all(path.read_text()):
            found[(document["kind"], document["metadata"]["name"])] = document
    return found


def pod_spec(kind: str, name: str) -> dict[str, Any]:
    """The pod template's spec of a Job or Deployment."""
    spec: dict[str, Any] = manifests()[(kind, name)]["spec"]["template"]["spec"]
    return spec


def container(kind: str, name: str) -> dict[str, Any]:
    """The one container of a Job's or Deployment's pods."""
    (only,) = pod_spec(kind, name)["containers"]
    found: dict[str, Any] = only
    return found


def pod_labels(kind: str, name: str) -> dict[str, str]:
    """The labels of a Job's or Deployment's pods."""
    labels: dict[str, str] = manifests()[(kind, name)]["spec"]["template"]["metadata"]["labels"]
    return labels


def k8s_env(kind: str, name: str) -> dict[str, str]:
    """The environment of a Job's or Deployment's container."""
    return {item["name"]: item["value"] for item in container(kind, name).get("env", [])}


def option(command: list[Any], flag: str) -> str:
    """The value given to `flag` in a container command."""
    parts = [str(part) for part in command]
    assert flag in parts, f"{flag} missing from {parts}"
    return parts[parts.index(flag) + 1]


def configmap_sweep() -> str:
    """The cluster.toml the loadgen-sweep ConfigMap holds."""
    text: str = manifests()[("ConfigMap", "loadgen-sweep")]["data"]["cluster.toml"]
    return text


def sweep_documents() -> dict[str, dict[str, Any]]:
    """The cluster sweep files, parsed: compose's and the Kubernetes ConfigMap's."""
    return {
        "compose": tomllib.loads((DOCKER / "sweeps" / "cluster.toml").read_text()),
        "k8s": tomllib.loads(configmap_sweep()),
    }


@cache
def schema() -> dict[str, Any]:
    """What `loadgen config schema` prints."""
    done = subprocess.run(
        [str(BIN / "loadgen"), "config", "schema"], capture_output=True, text=True, check=True
    )
    printed: dict[str, Any] = json.loads(done.stdout)
    return printed


def schema_errors(document: dict[str, Any]) -> list[str]:
    """Where `document` breaks `loadgen config schema`."""
    validator = jsonschema.Draft202012Validator(schema())
    return [f"{list(error.path)}: {error.message}" for error in validator.iter_errors(document)]


def loaded(document: dict[str, Any], label: str) -> RunConfig:
    """`document` resolved by loadgen's own loader, as a sweep file."""
    return resolve([data_source(document, label)], RunConfig).config


def needs_cluster_section() -> None:
    """Skip until `loadgen config schema` knows the [cluster] section."""
    if "cluster" not in schema()["properties"]:
        pytest.skip("`loadgen config schema` has no [cluster] section yet")


def needs_subcommand(name: str) -> str:
    """`loadgen NAME --help`, or a skip until loadgen has that subcommand."""
    done = subprocess.run(
        [str(BIN / "loadgen"), name, "--help"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"loadgen has no `{name}` subcommand yet")
    return done.stdout


# --- Kubernetes ----------------------------------------------------------------------------------


def test_manifests_follow_the_kubernetes_schemas() -> None:
    """Strict: unknown fields fail; quiet: a kind without a schema would print a warning."""
    files = resource_files()
    assert {path.name for path in files} >= {
        "configmap.yaml",
        "master.yaml",
        "master-service.yaml",
        "worker.yaml",
    }
    checked = subprocess.run(
        [str(BIN / "kubernetes-validate"), "-k", KUBERNETES_VERSION, "--strict", "--quiet",
         *map(str, files)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout + checked.stderr == ""


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(path.name for path in resource_files())


def test_objects_take_the_namespace_of_the_context() -> None:
    assert "namespace" not in yaml.safe_load(KUSTOMIZATION.read_text())
    assert not any(kind == "Namespace" for kind, _ in manifests())
    for (kind, name), document in manifests().items():
        assert "namespace" not in document["metadata"], f"{kind} {name}"


def test_images_are_the_compose_image() -> None:
    image = compose()["x-loadgen"]["image"]
    for kind, name in (("Job", MASTER), ("Deployment", WORKER)):
        assert container(kind, name)["image"] == image, name


def test_master_job_runs_the_sweep_once() -> None:
    job = manifests()[("Job", MASTER)]
    assert job["spec"]["backoffLimit"] == 0
    assert pod_spec("Job", MASTER)["restartPolicy"] == "Never"
    args = container("Job", MASTER)["args"]
    assert args[0] == "master"
    assert option(args, "--master-bind-host") == "0.0.0.0"
    assert option(args, "--out").startswith("/results/")


def test_master_reads_the_configmap_sweep_and_writes_to_a_volume() -> None:
    mounts = {
        mount["mountPath"]: mount["name"] for mount in container("Job", MASTER)["volumeMounts"]
    }
    volumes = {volume["name"]: volume for volume in pod_spec("Job", MASTER)["volumes"]}
    sweep_path = Path(option(container("Job", MASTER)["args"], "--config"))
    configmap = volumes[mounts[str(sweep_path.parent)]]["configMap"]
    assert configmap["name"] == "loadgen-sweep"
    assert sweep_path.name in manifests()[("ConfigMap", "loadgen-sweep")]["data"]
    assert "/results" in mounts, "the master's results need a volume"


def test_master_service_selects_the_master_pods_only() -> None:
    selector = manifests()[("Service", MASTER)]["spec"]["selector"]
    assert selector.items() <= pod_labels("Job", MASTER).items()
    assert not selector.items() <= pod_labels("Deployment", WORKER).items()


def test_workers_select_their_own_pods() -> None:
    deployment = manifests()[("Deployment", WORKER)]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels("Deployment", WORKER).items()
    assert not selector.items() <= pod_labels("Job", MASTER).items()


def service_port(name: str) -> dict[str, Any]:
    """The master Service's port called `name`."""
    ports = manifests()[("Service", MASTER)]["spec"]["ports"]
    (port,) = [port for port in ports if port["name"] == name]
    found: dict[str, Any] = port
    return found


def container_port(name: str) -> int:
    """The master container's port called `name`."""
    ports = container("Job", MASTER)["ports"]
    (port,) = [port["containerPort"] for port in ports if port["name"] == name]
    number: int = port
    return number


def test_workers_reach_the_master_through_its_service() -> None:
    master_args = container("Job", MASTER)["args"]
    worker_args = container("Deployment", WORKER)["args"]
    assert worker_args[0] == "worker"
    assert option(worker_args, "--master-host") == MASTER
    locust = service_port("locust")
    bind_port = int(option(master_args, "--master-bind-port"))
    assert bind_port == int(option(worker_args, "--master-port")) == locust["port"]
    assert container_port(locust["targetPort"]) == bind_port


def test_master_metrics_are_served_annotated_and_exposed() -> None:
    env = k8s_env("Job", MASTER)
    assert env["LOADGEN_METRICS_HOST"] == "0.0.0.0"
    port = int(env["LOADGEN_METRICS_PORT"])
    annotations = manifests()[("Job", MASTER)]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == port
    metrics = service_port("metrics")
    assert container_port(metrics["targetPort"]) == port == metrics["port"]


def test_master_waits_for_as_many_workers_as_run() -> None:
    replicas = manifests()[("Deployment", WORKER)]["spec"]["replicas"]
    assert int(k8s_env("Job", MASTER)["LOADGEN_EXPECT_WORKERS"]) == replicas
    assert tomllib.loads(configmap_sweep())["cluster"]["expect_workers"] == replicas


def test_each_worker_gets_one_whole_core() -> None:
    resources = container("Deployment", WORKER)["resources"]
    assert str(resources["requests"]["cpu"]) == str(resources["limits"]["cpu"]) == "1"
    assert resources["limits"]["memory"]
    master = container("Job", MASTER)["resources"]
    assert master["requests"]
    assert master["limits"]


# --- compose -------------------------------------------------------------------------------------


def test_cluster_profile_is_workers_of_the_service() -> None:
    """The profile adds workers only: no master of its own, they join the default `loadgen`."""
    known = services()
    image = compose()["x-loadgen"]["image"]
    profiled = {name for name, service in known.items() if "cluster" in service.get("profiles", [])}
    assert profiled == {WORKER}
    assert MASTER not in known
    assert known[WORKER]["image"] == image
    assert "profiles" not in known[SERVICE], "the service is in the default profile"
    assert str(known[SERVICE]["command"][0]) == "serve"


def test_compose_workers_reach_the_service_workers_port() -> None:
    known = services()
    service, worker = known[SERVICE]["command"], known[WORKER]["command"]
    assert str(worker[0]) == "worker"
    assert option(worker, "--master-host") == SERVICE
    assert option(worker, "--master-port") == option(service, "--workers-port")
    assert known[WORKER]["depends_on"][SERVICE] == {"condition": "service_healthy"}
    assert "healthcheck" in known[SERVICE], "service_healthy needs a healthcheck"
    assert "ports" not in known[WORKER], "workers publish nothing; scaled, they would clash"


def test_compose_workers_join_with_the_service_token() -> None:
    """A worker proves it holds one of the service's tokens: both read the same secret."""
    known = services()
    worker_env = composed_env(known[WORKER], {})
    assert TOKEN_ENV not in worker_env
    assert worker_env[TOKEN_FILE_ENV] == secret_path(known[WORKER], TOKEN_SECRET)
    assert service_settings({}).api_token_file == Path(secret_path(known[SERVICE], TOKEN_SECRET))


def compose_default(value: str) -> str:
    """The default of a `${CLUSTER_WORKERS:-N}` interpolation."""
    match = re.fullmatch(r"\$\{CLUSTER_WORKERS:-(\d+)\}", str(value))
    assert match, f"{value} is not ${{CLUSTER_WORKERS:-N}}"
    return match.group(1)


def test_compose_starts_several_workers_by_default() -> None:
    replicas = services()[WORKER]["deploy"]["replicas"]
    assert int(compose_default(replicas)) >= 2, "one worker is no cluster"


def test_compose_cluster_sweep_is_one_the_service_accepts() -> None:
    """Submitted with `loadgen remote`: it names its own target, a compose service on a port it
    serves, and passes the service's check under the composed limits (so no [cluster])."""
    known = services()
    document = sweep_documents()["compose"]
    assert "cluster" not in document, "the service refuses a [cluster] section"
    config = checked_config(document, service_limits(service_settings({})))
    (target,) = config.run_targets()
    url = urlsplit(target.base_url or "")
    assert url.hostname in known, f"{url.hostname} is no compose service"
    served = [str(port).split(":")[-1] for port in known[url.hostname]["ports"]]
    assert str(url.port) in served
    assert known[SERVICE]["depends_on"][url.hostname] == {"condition": "service_healthy"}


def test_compose_and_k8s_cluster_sweeps_send_the_same_load() -> None:
    """The same sweep in both: they differ in target and in [cluster], which is k8s's only."""
    documents = sweep_documents()
    for section in ("workload", "load"):
        assert documents["compose"][section] == documents["k8s"][section], section


COMMANDS = {
    "compose-worker": (
        lambda: services()[WORKER]["command"],
        lambda: composed_env(services()[WORKER], {}),
    ),
    "k8s-master": (lambda: container("Job", MASTER)["args"], lambda: k8s_env("Job", MASTER)),
    "k8s-worker": (
        lambda: container("Deployment", WORKER)["args"],
        lambda: k8s_env("Deployment", WORKER),
    ),
}
# Read by `loadgen worker` itself (its token for a service master), not a setting of its own.
WORKER_TOKEN_VARIABLES = {TOKEN_ENV, TOKEN_FILE_ENV}


@pytest.mark.parametrize("where", COMMANDS)
def test_cluster_commands_and_variables_exist(where: str) -> None:
    """Every flag is one of `loadgen ROLE --help`, and so is every LOADGEN_* variable's."""
    command, env = COMMANDS[where]
    parts = [str(part) for part in command()]
    role = parts[0]
    assert role == where.split("-")[1]
    help_text = needs_subcommand(role)
    for flag in (part for part in parts if part.startswith("--")):
        assert flag in help_text, f"{where}: `loadgen {role}` has no {flag}"
    for name in env() or {}:
        if role == "worker" and name in WORKER_TOKEN_VARIABLES:
            continue
        if name.startswith("LOADGEN_"):
            flag = "--" + name.removeprefix("LOADGEN_").lower().replace("_", "-")
            assert flag in help_text, (
                f"{where}: {name} sets nothing (`loadgen {role}` has no {flag})"
            )


# --- the cluster sweep files ---------------------------------------------------------------------


def test_k8s_cluster_section_uses_known_keys() -> None:
    cluster = sweep_documents()["k8s"]["cluster"]
    assert set(cluster) <= CLUSTER_KEYS, sorted(set(cluster) - CLUSTER_KEYS)
    assert cluster["on_worker_loss"] in ("stop", "continue")
    assert cluster["expect_workers"] >= 1


@pytest.mark.parametrize("where", ["compose", "k8s"])
def test_cluster_sweep_files_follow_the_schema_outside_cluster(where: str) -> None:
    """All but [cluster] is the one-process sweep's, and loads with loadgen's loader."""
    document = {key: value for key, value in sweep_documents()[where].items() if key != "cluster"}
    assert schema_errors(document) == []
    config = loaded(document, f"{where} cluster.toml")
    assert config.workload.dataset == "s2s"
    assert config.load.rates_rps == (50.0, 100.0, 200.0)
    assert (config.load.num_requests, config.load.trim) == (2000, 100)
    assert config.load.num_requests > 2 * config.load.trim


def test_k8s_sweep_targets_an_in_cluster_service() -> None:
    config = loaded(
        {key: value for key, value in sweep_documents()["k8s"].items() if key != "cluster"}, "k8s"
    )
    (target,) = config.run_targets()
    assert (urlsplit(target.base_url or "").hostname or "").endswith(".svc")


@pytest.mark.parametrize("where", ["compose", "k8s"])
def test_cluster_sweep_files_follow_the_schema(where: str) -> None:
    """Once loadgen knows [cluster]: the whole file, section included."""
    needs_cluster_section()
    document = sweep_documents()[where]
    assert schema_errors(document) == []
    loaded(document, f"{where} cluster.toml")


# --- README's Scaling out ------------------------------------------------------------------


def doc_commands() -> Iterator[tuple[dict[str, str], list[str]]]:
    """(variables, argv) of each `docker compose`, `kubectl` or `loadgen remote` line in the
    doc's shell blocks."""
    text = README.read_text().split("\n## Scaling out\n", 1)[1].split("\n## ", 1)[0]
    for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", text, re.S):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            variables: dict[str, str] = {}
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                name, _, value = words.pop(0).partition("=")
                variables[name] = value
            if words[:2] in (["docker", "compose"], ["loadgen", "remote"]) or words[:1] == [
                "kubectl"
            ]:
                yield variables, words


def compose_call(argv: list[str]) -> tuple[list[str], list[str], list[str]]:
    """The files, profiles and the rest (subcommand on) of a `docker compose` argv."""
    files: list[str] = []
    profiles: list[str] = []
    rest = iter(argv[2:])
    for word in rest:
        if word in ("-f", "--file"):
            files.append(next(rest))
        elif word == "--profile":
            profiles.append(next(rest))
        else:
            return files, profiles, [word, *rest]
    return files, profiles, []


def results_folder(command: list[Any]) -> str:
    """Where a loadgen container keeps results: `--out`, or the service's `--results`."""
    parts = [str(part) for part in command]
    return option(parts, "--out" if "--out" in parts else "--results")


def check_compose_line(variables: dict[str, str], argv: list[str]) -> None:
    """Files, profiles, services and scales of one `docker compose` line exist and agree."""
    files, profiles, rest = compose_call(argv)
    assert [ROOT / name for name in files] == [COMPOSE], argv
    known = services()
    used = {profile for service in known.values() for profile in service.get("profiles", [])}
    assert set(profiles) <= used, f"no service has profile {set(profiles) - used}: {argv}"

    def enabled(name: str) -> None:
        assert name in known, f"{name} is no compose service: {argv}"
        own = known[name].get("profiles")
        assert own is None or set(own) & set(profiles), f"{name} needs --profile {own}: {argv}"

    words = iter(rest[1:])
    named: list[str] = []
    for word in words:
        if word == "--scale":
            service, _, count = next(words).partition("=")
            enabled(service)
            assert int(count) >= 1, argv
        elif ":" in word and not word.startswith("-"):
            service, _, path = word.partition(":")
            enabled(service)
            folder = results_folder(known[service]["command"])
            assert path == folder or path.startswith(folder + "/"), argv
        elif not word.startswith("-"):
            named.append(word)
    for name in named:
        enabled(name)
    if rest[:1] == ["up"] and "cluster" in profiles:
        # The cluster sweep is submitted to the service, which runs one sweep at a time: with
        # its boot sweep off, it does not wait behind the simulator's sweep.
        assert variables.get("LOADGEN_BOOT_SWEEP") == "", f"turn the boot sweep off: {argv}"
        assert not named or SERVICE in named, f"the workers join {SERVICE}: {argv}"


def check_remote_line(argv: list[str]) -> None:
    """`loadgen remote` calls the service where compose publishes it; a submitted file passes
    the service's check under the composed limits."""
    service = services()[SERVICE]
    words = iter(argv[2:])
    for word in words:
        if word == "--server":
            url = urlsplit(next(words))
            assert url.hostname == "localhost", argv
            published = [str(port).split(":")[0] for port in service["ports"]]
            assert str(url.port) in published, argv
            assert option(service["command"], "--port") in [
                str(port).split(":")[-1] for port in service["ports"]
            ], argv
        elif word == "submit":
            path = ROOT / next(words)
            assert path.is_file(), argv
            checked_config(read_document(path), service_limits(service_settings({})))


def check_selector(selector: str, argv: list[str]) -> None:
    """A `-l` selector picks the master's pods."""
    wanted = dict(pair.split("=") for pair in selector.split(","))
    assert wanted.items() <= pod_labels("Job", MASTER).items(), argv


def check_kubectl_line(argv: list[str]) -> None:
    """Folders, objects, selectors and paths of one `kubectl` line exist."""
    words = iter(argv[1:])
    for word in words:
        if word == "-k":
            folder = ROOT / next(words)
            assert folder.resolve() == K8S, argv
            assert (folder / "kustomization.yaml").is_file(), argv
        elif word == "-l":
            check_selector(next(words), argv)
        elif word.split("/")[0] in KUBECTL_KINDS:
            kind, _, name = word.partition("/")
            assert (KUBECTL_KINDS[kind], name) in manifests(), f"no {word} in docker/k8s: {argv}"
        elif word.startswith("$("):
            inner, _, path = word.rpartition(":")
            check_kubectl_line(shlex.split(inner.removeprefix("$(").removesuffix(")")))
            assert path == option(container("Job", MASTER)["args"], "--out"), argv


def test_scaling_out_has_the_compose_remote_and_kubectl_commands() -> None:
    lines = [" ".join(argv) for _, argv in doc_commands()]
    assert any("--profile cluster up" in line for line in lines), lines
    submit = "loadgen remote --server http://localhost:8089 submit docker/sweeps/cluster.toml"
    assert submit in lines, lines
    for needed in ("kubectl apply -k docker/k8s/", "kubectl logs job/loadgen-master -f"):
        assert needed in lines, needed
    assert any(line.startswith("kubectl cp ") for line in lines), lines


def test_scaling_out_commands_name_what_exists() -> None:
    for variables, argv in doc_commands():
        if argv[0] == "docker":
            check_compose_line(variables, argv)
        elif argv[0] == "loadgen":
            check_remote_line(argv)
        else:
            check_kubectl_line(argv)
