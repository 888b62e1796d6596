"""loadgen against `transformers serve --continuous-batching`, a server with different habits.

It ends streams without `data: [DONE]`, puts usage on its last chunk whatever
`stream_options` says, and answers HTTP 422 to fields it does not know, such as `ignore_eos`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration._helpers import read_jsonl, read_summary, run_cli
from tests.real_servers._servers import Server

OUTPUT_TOKENS = 12


def run(
    server: Server, out: Path, capfd: pytest.CaptureFixture[str], *flags: str
) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    """One 30-request step at 4 req/s (trim 5): summary, requests and what was printed."""
    argv = [
        "run", *server.target(), "--rate", "4", "--num-requests", "30", "--trim", "5",
        "--input-len", "24", "--output-len", str(OUTPUT_TOKENS), "--out", str(out), *flags,
    ]  # fmt: skip
    assert run_cli(argv) == 0
    return read_summary(out), read_jsonl(out / "requests.jsonl"), capfd.readouterr().err


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_a_refused_field_is_dropped_once_with_a_warning(
    transformers_server: Server, tmp_path: Path, capfd: pytest.CaptureFixture[str], endpoint: str
) -> None:
    summary, rows, err = run(transformers_server, tmp_path, capfd, "--endpoint", endpoint)

    # Generated workloads send ignore_eos; the server refuses it, so the first request fails
    # (no retry), and every later one goes without it. Requests sent before that first answer
    # came back (250 ms later at most, on a loaded machine) carry it too and fail the same way.
    failed = [row for row in rows if not row["ok"]]
    assert failed[0]["index"] == 0
    assert failed[0]["status"] == 422
    assert "ignore_eos" in failed[0]["error"]
    # Everything after the first few requests succeeds (a cold server may fail one more).
    assert all(row["index"] < 3 for row in failed), failed
    assert err.count("refused the optional field 'ignore_eos'") == 1
    ok = [row for row in rows if row["ok"]]
    assert len(ok) == 30 - len(failed)
    # EOS is unreachable in the tiny model: outputs still have the asked-for length.
    assert {row["tokens_out"] for row in ok} == {OUTPUT_TOKENS}
    assert {row["tokens_source"] for row in ok} == {"server"}  # usage on the last chunk
    # No [DONE]: the stream still ends, with (nearly always) one chunk per token.
    assert all(1 <= row["chunks"] <= OUTPUT_TOKENS for row in ok)
    assert sum(row["chunks"] == OUTPUT_TOKENS for row in ok) >= 0.9 * len(ok)
    (step,) = summary["steps"]
    assert step["num_ok"] == step["num_kept"] == 20  # the failure is in the warm-up
    assert step["ttft_s"]["max"] <= step["e2e_s"]["max"]
    assert step["itl_s"]["mean"] == pytest.approx(step["tpot_s"]["mean"], rel=0.05)


def test_whole_responses(
    transformers_server: Server, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    summary, rows, _ = run(transformers_server, tmp_path, capfd, "--no-stream")

    ok = [row for row in rows if row["ok"]]
    assert 27 <= len(ok) <= 29  # the first one to three carried the refused field
    assert {row["tokens_out"] for row in ok} == {OUTPUT_TOKENS}
    assert summary["steps"][0]["ttft_s"] is None
