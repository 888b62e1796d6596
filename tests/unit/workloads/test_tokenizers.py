"""Exact token counting with tokenizer files, and prompts of an exact token length."""

from __future__ import annotations

import base64
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tiktoken
import tokenizers

from loadgen.workloads import DatasetError
from loadgen.workloads.text import prose_batch
from loadgen.workloads.tokenizers import (
    CL100K_PATTERN,
    ExactCounter,
    exact_length_prompts,
    load_counter,
)
from tests.support.tokenizer import build_bpe_tokenizer, write_tiktoken_file

SAMPLES = (
    "",
    "Hello world",
    "The quick brown fox, 12345 times! Café naïve 東京 😀",
    "<s> is text here, not a special token: <|endoftext|>",
    "  leading and trailing spaces \n\t new lines\n",
)
# Words outside the training corpus: they split into sub-words and multi-byte characters.
RARE = ("antidisestablishmentarianism", "Qwxz-9f7", "naïveté", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "31415926535")
RARE += ("ÆØÅ/ß", "😀🚀🎉", "東京都庁", "zyzzyva's", "\n\t  ")


@dataclass(frozen=True)
class Files:
    """Tokenizer files built once per session."""

    hf_json: Path
    tiktoken: Path


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    root = tmp_path_factory.mktemp("tokenizers")
    return Files(build_bpe_tokenizer(root / "hf"), write_tiktoken_file(root / "small.tiktoken"))


def library_lengths(spec: Path, texts: list[str]) -> list[int]:
    """Token counts from the library itself, not from the code under test."""
    if spec.suffix == ".tiktoken":
        lines = (line.split() for line in spec.read_text().splitlines())
        ranks = {base64.b64decode(token): int(rank) for token, rank in lines}
        encoding = tiktoken.Encoding(
            "t", pat_str=CL100K_PATTERN, mergeable_ranks=ranks, special_tokens={}
        )
        return [len(encoding.encode_ordinary(t)) for t in texts]
    tokenizer = tokenizers.Tokenizer.from_file(str(spec))
    return [len(tokenizer.encode(t, add_special_tokens=False).ids) for t in texts]


def spiced_texts(count: int, words: int, seed: int) -> list[str]:
    """Generated prose where every other text has a few rare words swapped in."""
    rng = np.random.default_rng(seed)
    texts = prose_batch([words] * count, rng)
    for i in range(1, count, 2):
        split = texts[i].split(" ")
        for k in rng.integers(0, len(split), size=6):
            split[k] = RARE[int(rng.integers(len(RARE)))]
        texts[i] = " ".join(split)
    return texts


@pytest.fixture(params=["hf_file", "hf_dir", "tiktoken"])
def spec_and_counter(request: pytest.FixtureRequest, files: Files) -> tuple[Path, ExactCounter]:
    path = {"hf_file": files.hf_json, "hf_dir": files.hf_json.parent, "tiktoken": files.tiktoken}
    spec = path[request.param]
    library = files.tiktoken if request.param == "tiktoken" else files.hf_json
    return library, load_counter(str(spec))


def test_counts_match_the_library(spec_and_counter: tuple[Path, ExactCounter]) -> None:
    library, counter = spec_and_counter
    texts = [*SAMPLES, *spiced_texts(20, 40, seed=1)]
    expected = library_lengths(library, texts)
    assert counter.source == "tokenizer"
    assert [counter.count(t) for t in texts] == expected
    assert counter.count_batch(texts) == expected
    assert [len(ids) for ids in counter.encode_batch(texts)] == expected


def test_hf_counts_leave_out_the_bos_the_post_processor_adds(files: Files) -> None:
    counter = load_counter(str(files.hf_json))
    with_bos = tokenizers.Tokenizer.from_file(str(files.hf_json)).encode("Hello world")
    assert len(with_bos.ids) == counter.count("Hello world") + 1


def test_hf_counts_ignore_truncation_saved_in_the_file(files: Files, tmp_path: Path) -> None:
    tokenizer = tokenizers.Tokenizer.from_file(str(files.hf_json))
    tokenizer.enable_truncation(max_length=8)
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    long_text = spiced_texts(1, 60, seed=2)[0]
    expected = library_lengths(files.hf_json, [long_text])[0]
    assert expected > 8
    assert load_counter(str(tmp_path)).count(long_text) == expected


def test_decode_batch_round_trips(spec_and_counter: tuple[Path, ExactCounter]) -> None:
    _library, counter = spec_and_counter
    texts = [t for t in SAMPLES if t] + spiced_texts(5, 30, seed=3)
    assert counter.decode_batch(counter.encode_batch(texts)) == texts


@pytest.mark.parametrize("kind", ["hf", "tiktoken"])
def test_exact_length_prompts_hit_every_length(files: Files, kind: str) -> None:
    library = files.hf_json if kind == "hf" else files.tiktoken
    counter = load_counter(str(library))
    rng = np.random.default_rng(4)
    lengths = [*range(1, 301), *(int(n) for n in rng.integers(1, 301, size=200))]
    texts = spiced_texts(500, 400, seed=5)
    prompts = exact_length_prompts(texts, lengths, counter)
    assert library_lengths(library, prompts) == lengths
    # Most prompts are the text's own start; a drifted one may drop a few leading tokens.
    starts = sum(text.startswith(prompt) for text, prompt in zip(texts, prompts, strict=True))
    assert starts > 400


@pytest.mark.parametrize("kind", ["hf", "tiktoken"])
def test_short_texts_are_repeated(files: Files, kind: str) -> None:
    library = files.hf_json if kind == "hf" else files.tiktoken
    counter = load_counter(str(library))
    texts = ["Tell me a story.", "Why?", "Hello there, world"]
    lengths = [50, 120, 30]
    prompts = exact_length_prompts(texts, lengths, counter)
    assert library_lengths(library, prompts) == lengths
    for text, prompt in zip(texts, prompts, strict=True):
        assert prompt.startswith(f"{text} {text}")
        assert " ".join([text] * 200).startswith(prompt)


@pytest.mark.parametrize("kind", ["hf", "tiktoken"])
def test_cuts_inside_multi_token_characters_are_worked_around(files: Files, kind: str) -> None:
    library = files.hf_json if kind == "hf" else files.tiktoken
    counter = load_counter(str(library))
    # Every character here is several tokens, so most plain cuts land inside one.
    text = "Hello there, " + "𝔘𝔫𝔦𝔠𝔬𝔡𝔢" * 40
    lengths = list(range(20, 80))
    prompts = exact_length_prompts([text] * len(lengths), lengths, counter)
    assert library_lengths(library, prompts) == lengths
    assert all(prompt in text or "\ufffd" in prompt for prompt in prompts)


class NeverExact:
    """A tokenizer stub whose decoded texts always count 0 tokens."""

    source = "tokenizer"

    def count(self, text: str) -> int:
        return 0

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return [self.count(t) for t in texts]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(range(len(t.split()))) for t in texts]

    def decode_batch(self, ids: Sequence[Sequence[int]]) -> list[str]:
        return [" ".join("w" for _ in seq) for seq in ids]


def test_a_prompt_that_cannot_be_made_exact_is_named() -> None:
    texts = ["a b c d e f g h", "one two three"]
    with pytest.raises(ValueError, match="prompt 0 cannot be made exactly 3 tokens"):
        exact_length_prompts(texts, [3, 2], NeverExact())


def test_exact_length_prompts_edge_cases(files: Files) -> None:
    counter = load_counter(str(files.hf_json))
    assert exact_length_prompts([], [], counter) == []
    assert exact_length_prompts(["Hello world"], [0], counter) == [""]
    with pytest.raises(ValueError, match="2 texts but 1 lengths"):
        exact_length_prompts(["a", "b"], [1], counter)
    with pytest.raises(ValueError, match="length 1 is negative"):
        exact_length_prompts(["a", "b"], [1, -1], counter)
    with pytest.raises(ValueError, match="text 1 has no tokens"):
        exact_length_prompts(["a", ""], [1, 5], counter)


def test_missing_path(tmp_path: Path) -> None:
    spec = str(tmp_path / "nothing.json")
    with pytest.raises(DatasetError, match="no such file") as err:
        load_counter(spec)
    assert spec in str(err.value)


def test_json_that_is_not_a_tokenizer(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text('{"vocab": [1, 2, 3]}')
    with pytest.raises(DatasetError, match=r"not a Hugging Face tokenizer\.json") as err:
        load_counter(str(path))
    assert str(path) in str(err.value)


def test_directory_without_tokenizer_json(tmp_path: Path) -> None:
    (tmp_path / "vocab.txt").write_text("a\nb\n")
    with pytest.raises(DatasetError, match=r"no tokenizer\.json") as err:
        load_counter(str(tmp_path))
    assert str(tmp_path) in str(err.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "holds no token ranks"),
        (b"QQ== 0\nnot-base64! 1\n", "line 2 is not 'base64-token rank'"),
        (b"QQ== 0\n", "lacks 255 of the 256 single-byte tokens"),
    ],
)
def test_bad_tiktoken_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.tiktoken"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=message) as err:
        load_counter(str(path))
    assert str(path) in str(err.value)


def test_unknown_tiktoken_name() -> None:
    with pytest.raises(DatasetError, match="not available offline") as err:
        load_counter("tiktoken:nope")
    assert "'tiktoken:nope'" in str(err.value)


def test_tiktoken_name_that_cannot_download(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(name: str) -> tiktoken.Encoding:
        raise ConnectionError(f"cannot reach the blob store for {name}")

    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    with pytest.raises(DatasetError, match=r"cl100k_base.*not available offline.*blob store"):
        load_counter("tiktoken:cl100k_base")


@pytest.mark.parametrize(("module", "spec_of"), [("tokenizers", "hf"), ("tiktoken", "tiktoken")])
def test_missing_package_says_what_to_install(
    files: Files, monkeypatch: pytest.MonkeyPatch, module: str, spec_of: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    spec = str(files.hf_json if spec_of == "hf" else files.tiktoken)
    with pytest.raises(DatasetError, match=f"pip install {module}") as err:
        load_counter(spec)
    assert spec in str(err.value)
