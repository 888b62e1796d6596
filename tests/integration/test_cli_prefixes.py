"""Shared prefixes through `loadgen run` / `sweep`: what the server received, request by request.

A real aiohttp server on loopback (tests/support/fake_openai.py) records every body; the test
finds the prefixes in the bodies themselves, without asking loadgen which they were.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import tokenizers

from tests.integration._helpers import read_jsonl, read_summary, run_cli
from tests.support.fake_openai import Behaviour, FakeOpenAI, ServerThread
from tests.support.tokenizer import build_bpe_tokenizer

PREFIX_WORDS = 64
FRESH_WORDS = 20
NUM_PREFIXES = 4
PREFIX_FLAGS = ("--prefix-tokens", str(PREFIX_WORDS), "--num-prefixes", str(NUM_PREFIXES))


def run(url: str, out: Path, *extra: str, count: int) -> int:
    argv = ["run", "--base-url", url, "--rate", "400", "--num-requests", str(count)]
    argv += ["--trim", "1", "--quiet", "--out", str(out), "--output-len", "2"]
    return run_cli([*argv, "--dataset", "synthetic", "--input-len", str(FRESH_WORDS), *extra])


def system_and_user(body: Any) -> tuple[str, str]:
    messages = body["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]
    return messages[0]["content"], messages[1]["content"]


def test_completions_prompts_start_with_one_of_four_prefixes(tmp_path: Path) -> None:
    fake = FakeOpenAI(Behaviour())
    with ServerThread(fake) as url:
        assert run(url, tmp_path, *PREFIX_FLAGS, count=200) == 0
    prompts = [incoming.body["prompt"] for incoming in fake.seen.requests]
    # Every request is accounted for: sent, received, and recorded.
    assert len(prompts) == 200
    assert len(read_jsonl(tmp_path / "requests.jsonl")) == 200
    (step,) = read_summary(tmp_path)["steps"]
    assert step["num_sent"] == 200
    # Synthetic text is one common word per estimated token: 64 prefix words, then 20 fresh.
    words = [prompt.split() for prompt in prompts]
    assert {len(w) for w in words} == {PREFIX_WORDS + FRESH_WORDS}
    heads = Counter(" ".join(w[:PREFIX_WORDS]) for w in words)
    assert len(heads) == NUM_PREFIXES
    assert len({head.split()[0] for head in heads}) == NUM_PREFIXES  # differ from word one
    # Uniform popularity: each count is Binomial(200, 1/4), mean 50, sd 6.1; 20..80 is +-4.9 sd.
    assert all(20 <= n <= 80 for n in heads.values()), heads
    assert len({" ".join(w[PREFIX_WORDS:]) for w in words}) == 200  # fresh behind the prefix
    rows = read_jsonl(tmp_path / "requests.jsonl")
    # The fake server counts words as prompt tokens: prefix and fresh part together.
    assert {row["tokens_in"] for row in rows} == {PREFIX_WORDS + FRESH_WORDS}
    # The results say how the prompts shared prefixes, and that steps do not share them.
    note = read_summary(tmp_path)["prefixes"]
    assert f"{NUM_PREFIXES} prefixes of {PREFIX_WORDS} tokens" in note
    assert "fresh at every step" in note


def test_chat_sweep_puts_zipf_prefixes_in_system_messages_fresh_per_step(tmp_path: Path) -> None:
    fake = FakeOpenAI(Behaviour())
    with ServerThread(fake) as url:
        code = run_cli(
            ["sweep", "--base-url", url, "--rates", "300,600", "--num-requests", "100",
             "--trim", "1", "--quiet", "--out", str(tmp_path), "--endpoint", "chat",
             "--input-len", str(FRESH_WORDS), "--output-len", "2", *PREFIX_FLAGS,
             "--prefix-zipf", "2"]
        )  # fmt: skip
    assert code == 0
    bodies = [incoming.body for incoming in fake.seen.requests]
    assert len(bodies) == 200
    assert [s["num_sent"] for s in read_summary(tmp_path)["steps"]] == [100, 100]
    assert len(read_jsonl(tmp_path / "requests.jsonl")) == 200
    # A step's requests all finish before the next step starts: the first 100 are step 0's.
    steps = [[system_and_user(b) for b in bodies[:100]], [system_and_user(b) for b in bodies[100:]]]
    systems = [Counter(system for system, _ in step) for step in steps]
    assert [len(s) for s in systems] == [NUM_PREFIXES, NUM_PREFIXES]
    assert not set(systems[0]) & set(systems[1])  # no step warms the next one's cache
    # Zipf s=2 over 4: rank 1 has 1 / (1 + 1/4 + 1/9 + 1/16) = 0.70; of 100, sd 4.6.
    for counts in systems:
        assert counts.most_common(1)[0][1] >= 50, counts
    users = [user for step in steps for _, user in step]
    assert len(set(users)) == 200


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bpe_tokenizer(tmp_path_factory.mktemp("tokenizer"))


def test_with_a_tokenizer_each_prefix_is_exactly_n_tokens(
    tmp_path: Path, tokenizer_json: Path
) -> None:
    fake = FakeOpenAI(Behaviour())
    with ServerThread(fake) as url:
        code = run(url, tmp_path, *PREFIX_FLAGS, "--endpoint", "chat", "--dataset", "s2s",
                   "--tokenizer", str(tokenizer_json), count=60)  # fmt: skip
    assert code == 0
    pairs = [system_and_user(incoming.body) for incoming in fake.seen.requests]
    assert len(pairs) == 60
    systems = {system for system, _ in pairs}
    assert len(systems) == NUM_PREFIXES
    # Counted by the tokenizers library itself, not by loadgen.
    library = tokenizers.Tokenizer.from_file(str(tokenizer_json))
    encoded = [library.encode(s, add_special_tokens=False).ids for s in systems]
    assert [len(ids) for ids in encoded] == [PREFIX_WORDS] * NUM_PREFIXES
    assert len({ids[0] for ids in encoded}) == NUM_PREFIXES  # differ from their first token


def test_describe_shows_the_prefix_sharing(capfd: pytest.CaptureFixture[str]) -> None:
    argv = ["dataset", "describe", "synthetic", "--input-len", "48", "--num-requests", "100"]
    assert run_cli([*argv, "--prefix-tokens", "16", "--num-prefixes", "4", "--json"]) == 0
    summary = json.loads(capfd.readouterr().out)
    # 16 prefix tokens of 64 per request: a quarter; a warm cache misses 4 first uses of 100.
    assert summary["prefixes"] == {
        "used": 4,
        "tokens": 16,
        "share": 0.25,
        "reusable": pytest.approx(16 * 96 / 6400),
    }


def test_prefixes_on_a_dataset_file_are_refused(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps({"prompt": "hi", "max_tokens": 2}) + "\n")
    with ServerThread(FakeOpenAI(Behaviour())) as url:
        code = run(url, tmp_path / "out", "--dataset", str(path), *PREFIX_FLAGS, count=4)
    err = capfd.readouterr().err
    assert code == 2
    assert "shared prefixes are for generated workloads" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_the_embedded_simulator_serves_prefixed_prompts(tmp_path: Path) -> None:
    code = run_cli(
        ["run", "--rate", "50", "--num-requests", "40", "--trim", "5", "--dataset", "s2s",
         "--quiet", "--out", str(tmp_path), *PREFIX_FLAGS, "--prefix-zipf", "1.1"]
    )  # fmt: skip
    assert code == 0
    (step,) = read_summary(tmp_path)["steps"]
    assert step["num_sent"] == 40
    rows = read_jsonl(tmp_path / "requests.jsonl")
    assert len(rows) == 40
    assert all(row["ok"] for row in rows)
    # The simulator counts prompt words: every prompt holds the 64 prefix words and more.
    assert all(row["tokens_in"] > PREFIX_WORDS for row in rows)
