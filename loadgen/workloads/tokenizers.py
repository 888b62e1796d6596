"""Exact token counts with a real tokenizer, and prompts of an exact token length.

`tokenizers` and `tiktoken` are optional extras (`pip install loadgen[tokenizers]`): they are
imported only when a tokenizer is loaded.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from loadgen.core.records import TokensSource
from loadgen.workloads import DatasetError

if TYPE_CHECKING:
    import tiktoken
    import tokenizers

TIKTOKEN_PREFIX = "tiktoken:"
# The pre-tokenizer pattern of tiktoken's cl100k_base, used for `.tiktoken` ranks files.
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
# Source texts get at least this many tokens beyond the wanted length, room to move a cut.
SPARE_TOKENS = 32
# No tokenizer we know of averages more characters per token on real text.
MAX_CHARS_PER_TOKEN = 16
MAX_GROW_ROUNDS = 4
# Half-widths (tokens) of the window grids searched for drifted prompts, one batched round each.
FIX_RADII = (1, 2, 4, 8, 16)


class ExactCounter(Protocol):
    """A tokenizer-backed counter that also encodes and decodes in batches."""

    @property
    def source(self) -> TokensSource:
        """Always "tokenizer"."""
        ...

    def count(self, text: str) -> int:
        """Tokens in `text`."""
        ...

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        """Tokens in each of `texts`."""
        ...

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each of `texts`, no special tokens added."""
        ...

    def decode_batch(self, ids: Sequence[Sequence[int]]) -> list[str]:
        """The text of each id sequence."""
        ...


class HuggingFaceCounter:
    """Exact counts with a Hugging Face `tokenizers.Tokenizer` (no special tokens added)."""

    def __init__(self, tokenizer: tokenizers.Tokenizer) -> None:
        # A tokenizer.json may enable truncation or padding; either would falsify counts.
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer

    @property
    def source(self) -> TokensSource:
        """Always "tokenizer"."""
        return "tokenizer"

    def count(self, text: str) -> int:
        """Tokens in `text`."""
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        """Tokens in each of `texts`."""
        return [len(e) for e in self._encodings(texts)]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each of `texts`."""
        return [e.ids for e in self._encodings(texts)]

    def decode_batch(self, ids: Sequence[Sequence[int]]) -> list[str]:
        """The text of each id sequence; special tokens stay, as text like "<s>" encodes to them."""
        return self._tokenizer.decode_batch(ids, skip_special_tokens=False)

    def _encodings(self, texts: Sequence[str]) -> list[tokenizers.Encoding]:
        """Encodings of `texts` in one parallel call."""
        return self._tokenizer.encode_batch(list(texts), add_special_tokens=False)


class TiktokenCounter:
    """Exact counts with a `tiktoken.Encoding` (`encode_ordinary`: special tokens are text)."""

    def __init__(self, encoding: tiktoken.Encoding) -> None:
        self._encoding = encoding

    @property
    def source(self) -> TokensSource:
        """Always "tokenizer"."""
        return "tokenizer"

    def count(self, text: str) -> int:
        """Tokens in `text`."""
        return len(self._encoding.encode_ordinary(text))

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        """Tokens in each of `texts`."""
        return [len(ids) for ids in self.encode_batch(texts)]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each of `texts`."""
        return self._encoding.encode_ordinary_batch(list(texts))

    def decode_batch(self, ids: Sequence[Sequence[int]]) -> list[str]:
        """The text of each id sequence; a cut inside a character decodes as U+FFFD."""
        # Not Encoding.decode_batch: its thread pool costs more per item than decoding does.
        return [self._encoding.decode(seq, errors="replace") for seq in ids]


def load_counter(spec: str) -> ExactCounter:
    """An exact counter: a tokenizer.json or its directory, a .tiktoken file, or tiktoken:NAME."""
    if spec.startswith(TIKTOKEN_PREFIX):
        return _named_tiktoken(spec, spec.removeprefix(TIKTOKEN_PREFIX))
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "tokenizer.json").is_file():
            raise DatasetError(f"tokenizer {spec!r}: directory has no tokenizer.json")
        path = path / "tokenizer.json"
    elif not path.is_file():
        raise DatasetError(f"tokenizer {spec!r}: no such file or directory")
    if path.suffix == ".tiktoken":
        return _tiktoken_file(spec, path)
    return _huggingface_file(spec, path)


def _missing(spec: str, module: str, err: ImportError) -> DatasetError:
    """The error for an optional tokenizer package that is not installed."""
    return DatasetError(
        f"tokenizer {spec!r} needs the {module!r} package ({err}): "
        f"pip install {module}  (or pip install 'loadgen[tokenizers]')"
    )


def _huggingface_file(spec: str, path: Path) -> HuggingFaceCounter:
    """A counter from a Hugging Face tokenizer.json."""
    try:
        import tokenizers
    except ImportError as err:
        raise _missing(spec, "tokenizers", err) from err
    try:
        tokenizer = tokenizers.Tokenizer.from_file(str(path))
    except Exception as err:  # the Rust side raises plain Exception for any bad file
        raise DatasetError(
            f"tokenizer {spec!r}: {path} is not a Hugging Face tokenizer.json ({err})"
        ) from err
    return HuggingFaceCounter(tokenizer)


def _tiktoken_file(spec: str, path: Path) -> TiktokenCounter:
    """A counter from a `.tiktoken` ranks file with the cl100k pre-tokenizer pattern."""
    try:
        import tiktoken
    except ImportError as err:
        raise _missing(spec, "tiktoken", err) from err
    ranks = _read_ranks(spec, path)
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise DatasetError(
            f"tokenizer {spec!r}: {path} lacks {len(missing)} of the 256 single-byte tokens"
        )
    encoding = tiktoken.Encoding(
        name=path.stem, pat_str=CL100K_PATTERN, mergeable_ranks=ranks, special_tokens={}
    )
    return TiktokenCounter(encoding)


def _read_ranks(spec: str, path: Path) -> dict[bytes, int]:
    """Parse the "base64-token rank" lines of a `.tiktoken` file.

    Not `tiktoken.load.load_tiktoken_bpe`: it caches every file by its path in a temp dir and
    then returns that stale copy after the file changes.
    """
    try:
        lines = path.read_bytes().splitlines()
    except OSError as err:
        raise DatasetError(f"tokenizer {spec!r}: cannot read {path} ({err})") from err
    ranks: dict[bytes, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except (ValueError, binascii.Error) as err:
            raise DatasetError(
                f"tokenizer {spec!r}: {path} line {number} is not 'base64-token rank' ({err})"
            ) from err
    if not ranks:
        raise DatasetError(f"tokenizer {spec!r}: {path} holds no token ranks")
    return ranks


def _named_tiktoken(spec: str, name: str) -> TiktokenCounter:
    """A counter from a named tiktoken encoding, which must already be in tiktoken's cache."""
    try:
        import tiktoken
    except ImportError as err:
        raise _missing(spec, "tiktoken", err) from err
    try:
        encoding = tiktoken.get_encoding(name)
    except Exception as err:  # unknown name, or a download that failed (requests, OSError, ...)
        raise DatasetError(
            f"tokenizer {spec!r}: tiktoken encoding {name!r} is not available offline "
            f"(unknown name, or not in tiktoken's cache, see TIKTOKEN_CACHE_DIR): {err}"
        ) from err
    return TiktokenCounter(encoding)


def exact_length_prompts(
    texts: Sequence[str], lengths: Sequence[int], tokenizer: ExactCounter
) -> list[str]:
    """Prompt i re-encodes to exactly lengths[i] tokens: the start of texts[i], repeated if short.

    Usually the first lengths[i] tokens; where that cut re-encodes to another count, a window of
    the text's tokens a few tokens off. ValueError names a prompt that cannot be made exact.
    """
    wanted = _checked_lengths(texts, lengths)
    sources = _encoded_heads(texts, wanted, tokenizer)
    _grow(sources, wanted, range(len(texts)), 0, tokenizer)
    prompts = tokenizer.decode_batch([ids[:n] for ids, n in zip(sources.ids, wanted, strict=True)])
    counts = tokenizer.count_batch(prompts)
    drifted = [i for i, (c, n) in enumerate(zip(counts, wanted, strict=True)) if c != n]
    if drifted:
        # Room for the window search beyond the plain cut.
        _grow(sources, wanted, drifted, SPARE_TOKENS, tokenizer)
        _fix_drifted(prompts, drifted, sources.ids, wanted, tokenizer)
    return prompts


def _checked_lengths(texts: Sequence[str], lengths: Sequence[int]) -> list[int]:
    """`lengths` as ints; ValueError for a length mismatch or a negative length."""
    if len(texts) != len(lengths):
        raise ValueError(f"got {len(texts)} texts but {len(lengths)} lengths")
    wanted = [int(n) for n in lengths]
    negative = [i for i, n in enumerate(wanted) if n < 0]
    if negative:
        raise ValueError(f"length {negative[0]} is negative: {wanted[negative[0]]}")
    return wanted


@dataclass(slots=True)
class _Sources:
    """Each text's head (a prefix of it, or it repeated) and the head's token ids."""

    texts: Sequence[str]
    heads: list[str]
    ids: list[list[int]]


def _encoded_heads(texts: Sequence[str], wanted: list[int], tokenizer: ExactCounter) -> _Sources:
    """Encode a generous head of each text: the cost then follows the wanted lengths."""
    limits = [MAX_CHARS_PER_TOKEN * (n + SPARE_TOKENS) for n in wanted]
    heads = [text[:limit] for text, limit in zip(texts, limits, strict=True)]
    return _Sources(texts, heads, tokenizer.encode_batch(heads))


def _grow(
    sources: _Sources,
    wanted: list[int],
    indices: Iterable[int],
    spare: int,
    tokenizer: ExactCounter,
) -> None:
    """Lengthen heads in `indices` to `spare` tokens beyond the wanted count, in place."""
    short = [i for i in indices if wanted[i] > 0 and len(sources.ids[i]) < wanted[i] + spare]
    for _ in range(MAX_GROW_ROUNDS):
        if not short:
            return
        for i in short:
            tokens, head, text = len(sources.ids[i]), sources.heads[i], sources.texts[i]
            if tokens == 0 and len(head) == len(text):
                raise ValueError(f"text {i} has no tokens, cannot make {wanted[i]} of it")
            factor = max(2, math.ceil((wanted[i] + spare) / tokens) + 1) if tokens else 2
            cut = len(head) < len(text)
            sources.heads[i] = text[: len(head) * factor] if cut else " ".join([head] * factor)
        longer = tokenizer.encode_batch([sources.heads[i] for i in short])
        for i, ids in zip(short, longer, strict=True):
            sources.ids[i] = ids
        short = [i for i in short if len(sources.ids[i]) < wanted[i] + spare]
    if short:
        raise ValueError(f"text {short[0]} stays shorter than {wanted[short[0]]} tokens")


def _fix_drifted(
    prompts: list[str],
    drifted: list[int],
    sources: list[list[int]],
    wanted: list[int],
    tokenizer: ExactCounter,
) -> None:
    """Replace each drifted prompt with a nearby window of its source ids that counts exactly.

    A cut inside a word or a multi-byte character re-encodes to more or fewer tokens, and inside
    a run of such characters no cut may give the count; dropping a few leading tokens as well
    shifts the count, so windows (start, end) are searched on a grid that widens each round.
    """
    pending = drifted
    for previous, radius in itertools.pairwise((0, *FIX_RADII)):
        candidates = {i: _windows(wanted[i], radius, previous, len(sources[i])) for i in pending}
        pending = _try_windows(prompts, candidates, sources, wanted, tokenizer)
        if not pending:
            return
    raise ValueError(
        f"prompt {pending[0]} cannot be made exactly {wanted[pending[0]]} tokens "
        f"from windows of its text near the start"
    )


def _windows(wanted: int, radius: int, previous: int, limit: int) -> list[tuple[int, int]]:
    """Windows (start, end) of source ids near (0, wanted) not searched at radius `previous`."""
    offsets = sorted(range(-radius, radius + 1), key=abs)
    found = []
    for start in range(radius + 1):
        for offset in offsets:
            end = wanted + start + offset
            seen = start <= previous and abs(offset) <= previous
            valid = start < end <= limit or (wanted == 0 and start == end)
            if valid and not seen:
                found.append((start, end))
    return found


def _try_windows(
    prompts: list[str],
    candidates: dict[int, list[tuple[int, int]]],
    sources: list[list[int]],
    wanted: list[int],
    tokenizer: ExactCounter,
) -> list[int]:
    """Count every candidate window in one batch; take the first exact one; return the misses."""
    owners = [i for i, windows in candidates.items() for _ in windows]
    cuts = [sources[i][s:e] for i, windows in candidates.items() for s, e in windows]
    texts = tokenizer.decode_batch(cuts)
    done: set[int] = set()
    for i, text, count in zip(owners, texts, tokenizer.count_batch(texts), strict=True):
        if count == wanted[i] and i not in done:
            prompts[i] = text
            done.add(i)
    return [i for i in candidates if i not in done]
