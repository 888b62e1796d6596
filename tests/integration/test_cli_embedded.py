"""`loadgen run` with no --base-url: the built-in simulator starts on a loopback port, is swept."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration._helpers import read_jsonl, read_summary, run_cli

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_run_without_base_url_sweeps_the_embedded_simulator(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # 60 requests at 20 req/s: about 3 s of sending, in real time (time scale 1).
    code = run_cli(
        [
            "run", "--rate", "20", "--num-requests", "60", "--trim", "10",
            "--dataset", "s2s", "--out", str(tmp_path),
        ]
    )  # fmt: skip
    _, err = capfd.readouterr()

    assert code == 0, err
    flat = " ".join(err.split())  # the console may wrap the notice
    assert "no base URL: sweeping the built-in simulator" in flat, err
    assert "http://127.0.0.1:" in flat
    assert "Traceback" not in err

    summary = read_summary(tmp_path)
    (step,) = summary["steps"]
    assert step["target_rate_rps"] == 20.0
    assert step["num_sent"] == 60
    assert step["num_kept"] == step["num_ok"] == 40
    assert step["num_errors"] == 0
    assert step["tokens_source"] == "server"
    assert summary["simulator"]["label"] == "sim a100/llama-2-7b/vllm"
    assert summary["target"]["label"] == "sim a100/llama-2-7b/vllm"
    assert summary["target"]["base_url"].startswith("http://127.0.0.1:")  # where it ran
    assert summary["target"]["model"] == "llama-2-7b"
    assert summary["config"]["target"]["base_url"] is None  # a replay starts its own again

    rows = read_jsonl(tmp_path / "requests.jsonl")
    assert len(rows) == 60
    assert all(row["ok"] for row in rows)
    # s2s is a generated workload: ignore_eos is on and every output has its drawn length.
    assert all(row["tokens_out"] == row["chunks"] >= 1 for row in rows)
    assert (tmp_path / "sweep.png").read_bytes()[:8] == PNG_SIGNATURE
