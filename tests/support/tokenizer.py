"""Small tokenizers built offline for tests: a byte-level BPE `tokenizer.json` and a `.tiktoken`."""

from __future__ import annotations

import base64
import itertools
import re
from collections import Counter
from pathlib import Path

import numpy as np

from loadgen.workloads.text import prose

# Digits, punctuation and multi-byte characters, so tests also cut inside numbers and UTF-8.
EXTRA_SNIPPETS: tuple[str, ...] = (
    "It costs $1,234.56 (about 7%) in 2024; call 555-0199 #42.",
    'She said: "Wait -- really?" and left @ 10:30, [see note] {ok}.',
    "Café naïve résumé — über straße, 東京 and 😀 emoji!",
    "x = foo(bar, baz) + 3 * 17 / 2; y = x ** 2 if x > 0 else -1",
)
# Roughly the pre-tokenizer of the cl100k pattern, in stdlib `re`: words keep their leading space.
_PIECES = re.compile(r" ?[A-Za-z]+| ?[0-9]{1,3}| ?[^\sA-Za-z0-9]+|\s+")


def training_corpus(seed: int = 0, num_texts: int = 60) -> list[str]:
    """Generated prose (a few thousand words in all) plus the extra snippets."""
    rng = np.random.default_rng(seed)
    texts = [prose(80, rng) for _ in range(num_texts)]
    return texts + list(EXTRA_SNIPPETS) * 5


def build_bpe_tokenizer(directory: Path, vocab_size: int = 2000) -> Path:
    """Train a byte-level BPE (with a BOS post-processor) into `directory`/tokenizer.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_corpus(), trainer)
    # Like Llama's, it adds a BOS token by default: counts must not include it.
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tokenizer.token_to_id("<s>"))]
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "tokenizer.json"
    tokenizer.save(str(path))
    return path


def write_tiktoken_file(path: Path, num_merges: int = 400) -> Path:
    """Write a `.tiktoken` ranks file: the 256 single bytes, then merges learned by pair counts."""
    ranks = _learn_ranks(Counter(_pieces(training_corpus())), num_merges)
    lines = [base64.b64encode(token) + b" " + str(rank).encode() for token, rank in ranks.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _pieces(texts: list[str]) -> list[tuple[bytes, ...]]:
    """Every pre-tokenized piece of `texts` as a tuple of single bytes."""
    return [
        tuple(bytes([b]) for b in piece.encode())
        for text in texts
        for piece in _PIECES.findall(text)
    ]


def _learn_ranks(words: Counter[tuple[bytes, ...]], num_merges: int) -> dict[bytes, int]:
    """Plain BPE training: repeatedly merge the most frequent adjacent pair."""
    ranks = {bytes([b]): b for b in range(256)}
    for _ in range(num_merges):
        pairs: Counter[tuple[bytes, bytes]] = Counter()
        for word, freq in words.items():
            for pair in itertools.pairwise(word):
                pairs[pair] += freq
        if not pairs:
            break
        (left, right), _count = pairs.most_common(1)[0]
        ranks.setdefault(left + right, len(ranks))
        words = Counter({_merge(word, left, right): freq for word, freq in words.items()})
    return ranks


def _merge(word: tuple[bytes, ...], left: bytes, right: bytes) -> tuple[bytes, ...]:
    """`word` with every adjacent (`left`, `right`) joined into one symbol."""
    out: list[bytes] = []
    i = 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == left and word[i + 1] == right:
            out.append(left + right)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)
