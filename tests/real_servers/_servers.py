"""What the real-server tests share: a running server, and reading its /metrics."""

from __future__ import annotations

import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True, slots=True)
class Server:
    """A running server: its OpenAI base URL, the model id to ask for, and its log file."""

    base_url: str
    model: str
    log: Path

    @property
    def root(self) -> str:
        """The URL without `/v1` (where /health and /metrics live)."""
        return self.base_url.removesuffix("/v1")

    def target(self, *flags: str) -> list[str]:
        """`loadgen` flags aimed at this server and model, then `flags`."""
        return ["--base-url", self.base_url, "--model", self.model, *flags]


def metric_totals(server: Server, *names: str) -> dict[str, float]:
    """The sum over labels of each sample named in `names`, from GET /metrics."""
    with urllib.request.urlopen(f"{server.root}/metrics", timeout=10) as response:
        text = response.read().decode()
    totals = dict.fromkeys(names, 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in totals:
                totals[sample.name] += sample.value
    return totals


def settled_totals(server: Server, *names: str, timeout_s: float = 10.0) -> dict[str, float]:
    """`metric_totals` once two scrapes 0.25 s apart agree: a server may count a request a
    moment after its response has ended."""
    deadline = time.monotonic() + timeout_s
    totals = metric_totals(server, *names)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        again = metric_totals(server, *names)
        if again == totals:
            break
        totals = again
    return totals
