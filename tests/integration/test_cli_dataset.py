"""`loadgen dataset describe` and `--tokenizer`, through the command line, on real files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tokenizers

from loadgen.cli import main
from loadgen.runtime.workload import workload_rng
from loadgen.workloads.scenarios import SCENARIOS
from tests.integration._helpers import read_jsonl, read_summary, run_cli
from tests.support.fake_openai import Behaviour, FakeOpenAI, ServerThread
from tests.support.tokenizer import build_bpe_tokenizer


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bpe_tokenizer(tmp_path_factory.mktemp("tokenizer"))


def describe(capfd: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["dataset", "describe", *argv])
    out, err = capfd.readouterr()
    return code, out, err


def test_describe_s2l_json_matches_the_scenario(capfd: pytest.CaptureFixture[str]) -> None:
    code, out, _ = describe(capfd, "s2l", "--num-requests", "1000", "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["count"] == 1000
    assert summary["tokens_source"] == "estimate"
    outputs = summary["output_tokens"]
    assert outputs["min"] >= 3
    assert outputs["max"] <= 1000
    assert 447 <= outputs["p50"] <= 527  # uniform 3..971: median 487; 1000 draws, +-40 is > 3 sd
    assert summary["input_tokens"]["max"] <= 50


def test_describe_file_with_filters_as_text(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "alpaca.json"
    entries = [{"instruction": "w " * n, "input": "", "output": "o" * (4 * n)} for n in (2, 8, 40)]
    path.write_text(json.dumps(entries))
    # Estimates: instructions of 4, 16 and 80 characters -> 1, 4 and 20 tokens; outputs 2, 8, 40.
    code, out, _ = describe(capfd, str(path), "--num-requests", "2", "--min-input", "2")
    assert code == 0
    assert out.startswith("requests: 2  (tokens: estimate)")
    # Kept outputs 8 and 40: p50 = mean = 24, p90 = 8 + 0.9 * 32 = 36.8.
    assert "output    8  24.0  24.0  36.8   40" in out


def test_describe_plot_writes_a_png(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "lengths.png"
    code, _, _ = describe(capfd, "l2s", "--num-requests", "200", "--plot", str(png))
    assert code == 0
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_describe_with_a_tokenizer_counts_exactly(
    tokenizer_json: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = describe(
        capfd, "s2s", "--num-requests", "300", "--tokenizer", str(tokenizer_json), "--json"
    )
    assert code == 0
    summary = json.loads(out)
    assert summary["tokens_source"] == "tokenizer"
    assert 4 <= summary["input_tokens"]["min"] <= summary["input_tokens"]["max"] <= 64


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nope.json"], "--dataset nope.json: no such file"),
        (["s2s", "--tokenizer", "/no/such/tokenizer.json"], "/no/such/tokenizer.json"),
        (
            ["s2s", "--shuffle", "--replacement"],
            "--replacement: shuffle and replacement exclude each other",
        ),
        (
            ["s2s", "--num-requests", "0"],
            "--num-requests: must be greater than or equal to 1 (got '0')",
        ),
    ],
)
def test_describe_bad_input_exits_2(
    argv: list[str], message: str, capfd: pytest.CaptureFixture[str]
) -> None:
    code, out, err = describe(capfd, *argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert out == ""


def test_run_with_a_tokenizer_sends_exact_length_prompts(
    tokenizer_json: Path, tmp_path: Path
) -> None:
    fake = FakeOpenAI(Behaviour())
    with ServerThread(fake) as url:
        code = run_cli(
            [
                "run",
                "--base-url",
                url,
                "--rate",
                "inf",
                "--max-concurrency",
                "1",
                "--num-requests",
                "30",
                "--trim",
                "1",
                "--dataset",
                "s2l",
                "--seed",
                "5",
                "--tokenizer",
                str(tokenizer_json),
                "--quiet",
                "--out",
                str(tmp_path),
            ]
        )
    assert code == 0
    # The lengths step 0 drew: the scenario itself, with step 0's generator for seed 5.
    drawn = [spec.tokens_in for spec in SCENARIOS["s2l"].specs(30, workload_rng(5, 0))]
    encoder = tokenizers.Tokenizer.from_file(str(tokenizer_json))
    encoder.no_truncation()
    sent = [
        len(encoder.encode(incoming.body["prompt"], add_special_tokens=False).ids)
        for incoming in fake.seen.requests  # one slot: the server sees them in send order
    ]
    assert sent == drawn


def test_tokenizer_counts_output_when_the_server_sends_no_usage(
    tokenizer_json: Path, tmp_path: Path
) -> None:
    fake = FakeOpenAI(Behaviour(send_usage=False, tokens_per_chunk=3))  # like DeepSpeed-MII
    with ServerThread(fake) as url:
        code = run_cli(
            [
                "run",
                "--base-url",
                url,
                "--rate",
                "100",
                "--num-requests",
                "6",
                "--trim",
                "1",
                "--output-len",
                "7",
                "--tokenizer",
                str(tokenizer_json),
                "--quiet",
                "--out",
                str(tmp_path),
            ]
        )
    assert code == 0
    encoder = tokenizers.Tokenizer.from_file(str(tokenizer_json))
    encoder.no_truncation()
    # The fake streams " tok" x 7 in chunks of 3, 3 and 1 tokens: 3 chunks.
    expected = len(encoder.encode(" tok" * 7, add_special_tokens=False).ids)
    rows = read_jsonl(tmp_path / "requests.jsonl")
    assert {(row["tokens_out"], row["tokens_source"], row["chunks"]) for row in rows} == {
        (expected, "tokenizer", 3)
    }
    assert read_summary(tmp_path)["steps"][0]["tokens_source"] == "tokenizer"
