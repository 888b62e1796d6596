"""`loadgen run` against a reasoning server, on chat and on the Responses API: the results files
carry TTFA and the reasoning and answer counts the server was scripted to produce.

The fake server sends R = 12 reasoning tokens then 8 answer tokens, one token per chunk, GAP_S
apart after TTFT_S: the first answer token leaves TTFT_S + 12 * GAP_S after the request. Bounds
as in test_client_streaming.py: never below the injected delay (LOW: timer rounding), above it
by at most a late wake-up per gap and scheduling on a loaded 2-core machine (HIGH).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration._helpers import read_jsonl, read_summary, run_cli
from tests.support.fake_openai import Behaviour, FakeOpenAI, ServerThread

TTFT_S = 0.030
GAP_S = 0.004
REASONING = 12
OUTPUT = 20
LOW = 0.001
HIGH = 0.150
NUM_REQUESTS = 30
TRIM = 5


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_run_writes_ttfa_and_reasoning_counts(tmp_path: Path, endpoint: str) -> None:
    fake = FakeOpenAI(
        Behaviour(ttft_s=TTFT_S, gap_s=GAP_S, reasoning_tokens=REASONING, reasoning_usage=False)
    )
    out = tmp_path / "out"
    with ServerThread(fake) as url:
        status = run_cli([
            "run", "--base-url", url, "--endpoint", endpoint, "--rate", "20",
            "--num-requests", str(NUM_REQUESTS), "--trim", str(TRIM), "--input-len", "8",
            "--output-len", str(OUTPUT), "--out", str(out), "--quiet",
        ])  # fmt: skip
    assert status == 0
    assert len(fake.seen.requests) == NUM_REQUESTS
    assert {incoming.endpoint for incoming in fake.seen.requests} == {endpoint}
    rows = read_jsonl(out / "requests.jsonl")
    assert sorted(row["index"] for row in rows) == list(range(NUM_REQUESTS))  # every request
    assert all(row["ok"] for row in rows)
    for row in rows:
        # Without the server's count, one token per reasoning chunk: exactly R here.
        assert row["reasoning_tokens"] == REASONING
        assert row["tokens_out"] == OUTPUT
        ttfa = TTFT_S + GAP_S * REASONING
        assert ttfa - LOW <= row["ttfa_s"] <= ttfa + HIGH, row
        assert TTFT_S - LOW <= row["ttft_s"] <= TTFT_S + HIGH, row
        assert row["ttfa_s"] - row["ttft_s"] >= GAP_S * REASONING - LOW
    (step,) = read_summary(out)["steps"]
    assert step["num_kept"] == NUM_REQUESTS - 2 * TRIM
    assert step["ttfa_s"]["count"] == NUM_REQUESTS - 2 * TRIM
    assert (step["reasoning_tokens_mean"], step["answer_tokens_mean"]) == (12.0, 8.0)
    assert step["ttfa_s"]["p50"] > step["ttft_s"]["p50"]
    # The report's step table shows TTFA and the reasoning and answer means.
    assert run_cli(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    head, row = page.split('<table class="steps">', 1)[1].split("</table>")[0].split("</tr>")[:2]
    names, values = re.findall(r"<th>(.*?)</th>", head), re.findall(r"<td>(.*?)</td>", row)
    cells = dict(zip(names, values, strict=True))
    assert float(cells["TTFA ms p50"]) == pytest.approx(step["ttfa_s"]["p50"] * 1e3, abs=0.05)
    assert cells["reasoning / answer tok"] == "12.0 / 8.0"
