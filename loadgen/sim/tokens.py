"""What the simulator's tokens are: prompt token content from text, output words, block hashes.

The simulator charges one token per whitespace-separated word. For prefix caching it also needs
each token's identity, derived from the text alone: a word is its own token, the first word of
a chat message carries its role (as a chat template would mark the turn), and a prompt given as
token ids is those ids. Two prompts that share their leading words share their leading tokens;
any other difference in the text makes the token sequences differ.

A KV block's hash chains the previous block's hash with the block's tokens, as vLLM's automatic
prefix caching does, so a block matches only when everything before it matches too. Hashes are
Python's `hash`: stable within the process that keeps the cache, which is all a cache needs.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence

Token = Hashable

# Output text: common words, one token each, so clients counting tokens agree with usage.
WORDS = tuple(
    f" {word}"
    for word in (
        "the model answers with a short and plain sentence about the question it was "
        "given while the server keeps every sequence of the batch moving one token at "
        "each step of the engine"
    ).split()
)
_OUTPUT_TOKENS = tuple(word.strip() for word in WORDS)


def token_text(rid: int, position: int) -> str:
    """The text of output token `position` of request `rid` (one word)."""
    return WORDS[(rid + position) % len(WORDS)]


def output_text(rid: int, start: int, stop: int) -> str:
    """The text of output tokens `start .. stop - 1` of request `rid`."""
    return "".join(token_text(rid, position) for position in range(start, stop))


def output_tokens(rid: int, start: int, stop: int) -> list[Token]:
    """The identities of output tokens `start .. stop - 1` of request `rid`: their words, as a
    prompt holding that text has them."""
    words, count = _OUTPUT_TOKENS, len(_OUTPUT_TOKENS)
    return [words[(rid + position) % count] for position in range(start, stop)]


def prompt_tokens(text: str) -> int:
    """Prompt length the simulator charges: one token per whitespace-separated word.

    loadgen's generated prompts are built from words counted this way, so the engine sees
    exactly the drawn lengths; real English text runs about 1.3 BPE tokens per word.
    """
    return max(1, len(text.split()))


def text_tokens(text: str) -> list[Token]:
    """The tokens of a completions prompt: its words."""
    return list(text.split())


def message_tokens(messages: Iterable[Mapping[str, object]]) -> list[Token]:
    """The tokens of chat messages: each message's words, its first word tagged with its role.

    A message whose content is text counts at least one token, as `prompt_tokens` charges it;
    one without content counts none.
    """
    tokens: list[Token] = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, str):
            continue
        words: list[Token] = list(content.split()) or [""]
        words[0] = (message.get("role"), words[0])
        tokens += words
    return tokens


def fit_tokens(tokens: Sequence[Token], count: int) -> tuple[Token, ...]:
    """`tokens` made exactly `count` long without losing what tells texts apart.

    A longer sequence keeps `count - 1` tokens and ends in one standing for all the rest; a
    shorter one is padded with tokens unique to its content. Either way two different inputs
    still give different sequences, and shared leading tokens stay shared.
    """
    if len(tokens) == count:
        return tuple(tokens)
    if len(tokens) > count:
        rest = ("rest", hash(tuple(tokens[count - 1 :])))
        return (*tokens[: count - 1], rest)
    salt = hash(tuple(tokens))
    return (*tokens, *(("pad", salt, i) for i in range(count - len(tokens))))


def block_hashes(tokens: Sequence[Token], block_size: int, parent: int | None = None) -> list[int]:
    """The chained hash of every full block of `tokens`, continuing from `parent`."""
    hashes: list[int] = []
    for start in range(0, len(tokens) - block_size + 1, block_size):
        parent = hash((parent, tuple(tokens[start : start + block_size])))
        hashes.append(parent)
    return hashes
