"""`loadgen capacity` of several targets from a sweep file, and on a cluster of shards.

The servers are fakes of known capacity: at most N streams at once, each taking STREAM_S, the
rest refused at once with HTTP 429, so a rate over N / STREAM_S fails the error-rate SLO: 160
kept requests without a failure hold 3% (Wilson's bound 2.3%), while 10% over the capacity
refuses 9% of them (see
test_cli_capacity.py for why constant arrivals make that knee sharp). Two servers of different
capacities in one sweep file must each get a search and an answer of their own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration._helpers import read_summary, run_cli
from tests.support.fake_openai import Behaviour, FakeOpenAI, ServerThread

STREAM_S = 0.1
RESOLUTION = 0.1
# The fakes run on threads of this process: their sleeps end a little late under load.
JITTER = 0.05
SEARCH = (
    "--arrival", "constant", "--output-len", "1", "--input-len", "16", "--seed", "5",
    "--num-requests", "240", "--trim", "40", "--slo", "error_rate=0.03",
    "--resolution", f"{RESOLUTION:g}", "--max-scale", "2", "--quiet",
)  # fmt: skip


def _within(capacity_rps: float, known_rps: float) -> bool:
    """A search to RESOLUTION lands within it (less the fake's jitter) under the known rate."""
    return known_rps / ((1 + RESOLUTION) * (1 + JITTER)) <= capacity_rps <= known_rps


@pytest.mark.slow
def test_a_sweep_file_searches_each_target_for_its_own_capacity(tmp_path: Path) -> None:
    small = FakeOpenAI(Behaviour(ttft_s=STREAM_S), max_streams=6, refuse_beyond=True)
    large = FakeOpenAI(Behaviour(ttft_s=STREAM_S), max_streams=12, refuse_beyond=True)
    with ServerThread(small) as small_url, ServerThread(large) as large_url:
        sweep_file = tmp_path / "sweep.toml"
        sweep_file.write_text(
            f'[[targets]]\nname = "small"\nbase_url = "{small_url}"\n\n'
            f'[[targets]]\nname = "large"\nbase_url = "{large_url}"\n'
        )
        out = tmp_path / "out"
        argv = ["capacity", "--config", str(sweep_file), *SEARCH, "--start-rate", "40"]
        code = run_cli([*argv, "--out", str(out)])
    assert code == 0
    found = {name: read_summary(out / name)["capacity"] for name in ("small", "large")}
    assert all(answer["converged"] for answer in found.values()), found
    assert _within(found["small"]["capacity_rps"], 6 / STREAM_S), found  # 60 req/s
    assert _within(found["large"]["capacity_rps"], 12 / STREAM_S), found  # 120 req/s


@pytest.mark.slow
def test_a_search_on_two_shard_processes_finds_the_capacity(tmp_path: Path) -> None:
    fake = FakeOpenAI(Behaviour(ttft_s=STREAM_S), max_streams=10, refuse_beyond=True)
    with ServerThread(fake) as url:
        argv = ["capacity", "--base-url", url, *SEARCH, "--start-rate", "60", "--processes", "2"]
        code = run_cli([*argv, "--out", str(tmp_path)])
    summary = read_summary(tmp_path)
    assert code == 0
    assert summary["capacity"]["converged"] is True
    assert _within(summary["capacity"]["capacity_rps"], 10 / STREAM_S), summary["capacity"]
    # Every step was sent by both shards.
    assert all(len(step["shards"]) == 2 for step in summary["steps"])
