"""`--profile staging`: loadgen-staging sweeps docker/sweeps/staging.toml's endpoints with a key.

The endpoints (https://staging.example.com and https://baseline.example.com) are one fake
container on the compose network under both names, with a certificate of a test CA and a
required API key (tests/stack/fake_staging.py). A compose file of the test's own adds it, the
CA (SSL_CERT_FILE) and a shorter load (LOADGEN_* variables, which win over the sweep file);
docker/compose.yaml and the sweep file run unchanged. The key is exported in the shell, as
docker/.env.example advises, and must reach the endpoint and appear in no log, file or metric.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import urllib.parse
import urllib.request
from pathlib import Path

import trustme
import yaml

from tests.stack._engine import ROOT, Engine
from tests.stack._stack import FIGURES, PROMETHEUS, Stack, holds_secret, wait_for

TARGETS = ("staging", "baseline")
RATE_RPS, NUM_REQUESTS, TRIM = 10, 60, 10


def _endpoint_files(folder: Path, key: str, image: str) -> Path:
    """The certificates and the compose file that adds the fake endpoint: that file's path."""
    certs = folder / "certs"
    certs.mkdir(mode=0o755)
    ca = trustme.CA()
    server = ca.issue_cert("staging.example.com", "baseline.example.com")
    ca.cert_pem.write_to_path(str(certs / "ca.pem"))
    server.cert_chain_pems[0].write_to_path(str(certs / "server.pem"))
    server.private_key_pem.write_to_path(str(certs / "server.key"))
    for pem in certs.iterdir():
        pem.chmod(0o644)
    mount = f"{certs}:/certs:ro"
    endpoint = {
        "image": image,
        "profiles": ["staging"],
        "user": "0",
        "entrypoint": ["python", "/opt/fake/tests/stack/fake_staging.py"],
        "environment": {
            "PYTHONPATH": "/opt/fake",
            "STAGING_KEY_SHA256": hashlib.sha256(key.encode()).hexdigest(),
            "CERT_FILE": "/certs/server.pem",
            "KEY_FILE": "/certs/server.key",
        },
        "volumes": [f"{ROOT / 'tests'}:/opt/fake/tests:ro", mount],
        "networks": {"default": {"aliases": ["staging.example.com", "baseline.example.com"]}},
    }
    staging = {
        "environment": {
            "SSL_CERT_FILE": "/certs/ca.pem",
            "LOADGEN_RATES": str(RATE_RPS),
            "LOADGEN_NUM_REQUESTS": str(NUM_REQUESTS),
            "LOADGEN_TRIM": str(TRIM),
        },
        "volumes": [mount],
        "depends_on": ["staging-endpoint"],
    }
    extra = folder / "staging-endpoint.yaml"
    extra.write_text(
        yaml.safe_dump({"services": {"staging-endpoint": endpoint, "loadgen-staging": staging}})
    )
    return extra


def test_staging_profile_sends_the_key_and_shows_it_nowhere(
    stack: Stack, images: str, tmp_path: Path
) -> None:
    key = f"sk-staging-{secrets.token_hex(20)}"
    stack.files.append(_endpoint_files(tmp_path, key, images))
    stack.profiles.append("staging")
    stack.engine = Engine({**stack.engine.env, "STAGING_API_KEY": key})
    started = time.monotonic()
    stack.compose("up", "--detach", "prometheus", "staging-endpoint", "loadgen-staging")

    def swept() -> bool:
        find = ["find", "/results/staging", "-name", "summary.json"]
        listing = stack.compose("exec", "-T", "loadgen-staging", *find, check=False).stdout
        return len(listing.split()) == len(TARGETS)

    wait_for(swept, 240, "both targets' summary.json")
    FIGURES["staging profile up, both targets swept (s)"] = f"{time.monotonic() - started:.1f}"
    for target in TARGETS:
        summary = json.loads(
            stack.exec("loadgen-staging", "cat", f"/results/staging/{target}/summary.json")
        )
        (step,) = summary["steps"]
        assert step["num_sent"] == NUM_REQUESTS
        assert step["num_ok"] == NUM_REQUESTS - 2 * TRIM, step
    stats = json.loads(stack.exec("staging-endpoint", "python", "-c", _STATS))
    # Every request (and each target's model probe) came with the key; none without.
    assert stats["refused"] == 0
    assert stats["authorized"] >= len(TARGETS) * NUM_REQUESTS

    # Prometheus scrapes loadgen-staging's metrics (the `loadgen` job) on the compose network.
    wait_for(
        lambda: stack.query('up{instance="loadgen-staging:9400"} == 1'),
        60,
        "Prometheus scraping loadgen-staging",
    )
    _the_key_is_nowhere(stack, key, tmp_path)


# The fake endpoint's counts of requests with and without the key, asked inside its container.
_STATS = (
    "import ssl, urllib.request as u; "
    "print(u.urlopen('https://127.0.0.1/stats', "
    "context=ssl._create_unverified_context()).read().decode())"
)
_METRICS = (
    "import urllib.request as u; print(u.urlopen('http://127.0.0.1:9400/metrics').read().decode())"
)


def _the_key_is_nowhere(stack: Stack, key: str, folder: Path) -> None:
    """No log of any service, no file of the results volume, no metric holds the key."""
    logs = stack.logs()
    assert "loadgen-staging" in logs
    assert not holds_secret(logs, key)
    copied = folder / "results"
    stack.compose("cp", "loadgen-staging:/results", str(copied))
    files = [path for path in copied.rglob("*") if path.is_file()]
    assert len(files) >= len(TARGETS) * 3
    for path in files:
        assert not holds_secret(path.read_bytes().decode(errors="replace"), key), path
    metrics = stack.exec("loadgen-staging", "python", "-c", _METRICS)
    assert "loadgen_step_sequence_throughput_rps" in metrics
    assert not holds_secret(metrics, key)
    everything = urllib.parse.urlencode({"match[]": '{job=~".+"}'})
    with urllib.request.urlopen(f"{PROMETHEUS}/federate?{everything}") as response:
        federated = response.read().decode()
    assert "loadgen_step_sequence_throughput_rps" in federated
    assert not holds_secret(federated, key)
