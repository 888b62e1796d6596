"""Workloads through `loadgen run`: paper scenarios, dataset files, sampling, prompt templates.

A real aiohttp server on loopback receives the requests; the test reads what it received.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration._helpers import read_jsonl, read_summary, run_cli
from tests.support.fake_openai import Behaviour, FakeOpenAI, ServerThread


def run(url: str, out: Path, *extra: str, count: int = 12) -> int:
    argv = ["run", "--base-url", url, "--rate", "200", "--num-requests", str(count)]
    return run_cli([*argv, "--trim", "1", "--quiet", "--out", str(out), *extra])


def test_s2s_scenario_sends_its_lengths_with_ignore_eos(tmp_path: Path) -> None:
    fake = FakeOpenAI(Behaviour())
    with ServerThread(fake) as url:
        assert run(url, tmp_path, "--dataset", "s2s", count=40) == 0
    bodies = [incoming.body for incoming in fake.seen.requests]
    assert len(bodies) == 40
    assert all(3 <= body["max_tokens"] <= 49 for body in bodies)  # the paper's S2S outputs
    assert all(body["ignore_eos"] is True for body in bodies)
    assert len({body["prompt"] for body in bodies}) == 40
    rows = read_jsonl(tmp_path / "requests.jsonl")
    # The fake server's usage echoes max_tokens, so the recorded outputs are the drawn lengths.
    assert sorted(row["tokens_out"] for row in rows) == sorted(b["max_tokens"] for b in bodies)


def test_sharegpt_file_with_the_l2s_style_cut_and_llama2_template(tmp_path: Path) -> None:
    long_prompt, short_prompt = "word " * 400, "hi there"  # 2000 and 8 characters
    conversations = [
        {
            "conversations": [
                {"from": "human", "value": long_prompt},
                {"from": "gpt", "value": "ok " * 20},
            ]
        },
        {
            "conversations": [
                {"from": "human", "value": short_prompt},
                {"from": "gpt", "value": "fine"},
            ]
        },
        {"conversations": [{"from": "gpt", "value": "no question first"}]},
    ]
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(conversations))
    fake = FakeOpenAI(Behaviour())
    out = tmp_path / "out"
    with ServerThread(fake) as url:
        # 2000 chars ~ 500 estimated tokens: kept by --min-input 100; the 8-char prompt is not.
        code = run(
            url,
            out,
            "--dataset",
            str(path),
            "--min-input",
            "100",
            "--prompt-template",
            "llama2",
            count=5,
        )
    assert code == 0
    prompts = [incoming.body["prompt"] for incoming in fake.seen.requests]
    assert prompts == [f"[INST] {long_prompt} [/INST]"] * 5  # file order, repeating
    assert {incoming.body["max_tokens"] for incoming in fake.seen.requests} == {15}  # 60 chars / 4
    assert "ignore_eos" not in fake.seen.requests[0].body  # a real dataset's lengths are not forced
    assert read_summary(out)["config"]["workload"]["min_input"] == 100


def test_messages_file_goes_to_the_chat_endpoint_as_is(tmp_path: Path) -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "why?"}]
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"messages": messages, "max_tokens": 3}) + "\n")
    fake = FakeOpenAI(Behaviour())
    with ServerThread(fake) as url:
        code = run(
            url,
            tmp_path / "out",
            "--dataset",
            str(path),
            "--endpoint",
            "chat",
            "--prompt-template",
            "llama2",
            count=4,
        )
    assert code == 0
    for incoming in fake.seen.requests:
        assert incoming.endpoint == "chat"
        assert incoming.body["messages"] == messages  # no template on a chat endpoint
        assert incoming.body["max_tokens"] == 3


def test_shuffle_is_seeded(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_text(
        "".join(json.dumps({"prompt": f"p{i}", "max_tokens": 2}) + "\n" for i in range(10))
    )

    def order(seed: str, out: str) -> list[str]:
        fake = FakeOpenAI(Behaviour())
        with ServerThread(fake) as url:
            assert run(url, tmp_path / out, "--dataset", str(path), "--shuffle", "--seed", seed,
                       "--rate", "inf", "--max-concurrency", "1", count=10) == 0  # fmt: skip
        return [incoming.body["prompt"] for incoming in fake.seen.requests]

    first, again, other = order("3", "a"), order("3", "b"), order("4", "c")
    assert sorted(first) == [f"p{i}" for i in range(10)]  # each once: no replacement
    assert first == again
    assert first != other
    assert first != [f"p{i}" for i in range(10)]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dataset", "s3s"], "--dataset s3s: no such file, and not one of synthetic, s2s"),
        (["--shuffle", "--replacement"], "shuffle and replacement exclude each other"),
        (["--min-input", "0"], "--min-input"),
    ],
)
def test_bad_workload_flags_exit_2(
    extra: list[str], message: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with ServerThread(FakeOpenAI(Behaviour())) as url:
        code = run(url, tmp_path, *extra)
    err = capfd.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err
