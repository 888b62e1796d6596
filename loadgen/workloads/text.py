"""Deterministic English-looking text of a given word count (pure: numpy only, no I/O)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
# Draws one text per entry of a word-count array, e.g. `prose_batch`.
TextBatch = Callable[[IntArray, np.random.Generator], list[str]]

# Common English words that Llama-, Mistral- and GPT-style BPE vocabularies each encode as one
# token when preceded by a space, so a text of L words is about L tokens. SyntheticWorkload draws
# from exactly this tuple: changing it changes its prompts for a given seed.
COMMON_WORDS: tuple[str, ...] = tuple(
    """the of and to in is was for on are with as his they at be this from have or by one had
    not but what all were when we there can an your which their said if do will each about how
    up out them then she many some so these would other into has more her two like him see time
    could no make than first been its who now people my made over did down only way find use may
    water long little very after words called just where most know get through back much before
    go good new write our used me man too any day same right look think also around another came
    come work three word must because does part even place well such here take why things help
    put years different away again off went old number great tell men say small every found still
    between name should home big give air line set own under read last never us left end along
    while might next sound below saw something thought both few those always looked show large
    often together asked house world going want school important until form food keep children
    feet land side without boy once animals life enough took sometimes four head above kind began
    almost live page got earth need far hand high year mother light parts country father let night
    following picture being study second eyes soon times story boys since white days ever paper
    hard near sentence better best across during today others however sure means knew try told
    young miles sun ways thing whole hear example heard several change answer room sea against top
    turned learn point city play toward five using himself usually""".split()
)

# More one-token words (same rule), so that prose reads less repetitively.
_MORE_WORDS: tuple[str, ...] = tuple(
    """explain describe list system problem question information group state family service
    market level case company power money music business friend health order book game team
    process plan result reason rate price history language community table design code value
    field court party class energy report policy program research event job car moment minute
    hour week month idea body face door war data model create include provide support build
    leave follow stop open close begin start happen carry allow meet pay lead understand watch
    stand lose seem believe bring hold run move speak grow walk win offer remember love consider
    appear buy wait serve send expect stay fall cut reach remain suggest raise pass sell require
    decide return simple clear strong free full real public local social human early late easy
    major common special able certain likely recent happy quick dark cold warm deep green blue
    red black main private possible low true bad within among though already less least rather
    quite really nothing everything someone tree river road street town""".split()
)

VOCABULARY: tuple[str, ...] = COMMON_WORDS + _MORE_WORDS

MIN_SENTENCE_WORDS = 6
MAX_SENTENCE_WORDS = 18
COMMA_PROBABILITY = 0.08

IMPERATIVE_OPENERS: tuple[str, ...] = ("explain", "describe", "write", "list", "give", "tell")
QUESTION_OPENERS: tuple[str, ...] = ("what", "how", "why", "when", "where", "which")

# Every word is rendered from a table of its forms: lower or capitalised, times these suffixes.
_SUFFIXES = ("", ",", ".", "?", "!")
_NO_MARK, _COMMA, _PERIOD, _QUESTION_MARK, _EXCLAMATION = range(len(_SUFFIXES))
_SENTENCE_MARKS = np.array([_PERIOD, _QUESTION_MARK, _EXCLAMATION])
_SENTENCE_MARK_WEIGHTS = (0.8, 0.1, 0.1)
_FORMS = np.array(
    [
        form + suffix
        for word in VOCABULARY
        for form in (word, word.capitalize())
        for suffix in _SUFFIXES
    ],
    dtype=object,
)
# Question openers first, so an opener index below their count means the text ends in "?".
_OPENER_WORDS = np.array([VOCABULARY.index(w) for w in QUESTION_OPENERS + IMPERATIVE_OPENERS])


def prose(num_words: int, rng: np.random.Generator) -> str:
    """Sentences of 6-18 words (fewer only when `num_words` < 6), `num_words` words in all."""
    return prose_batch([num_words], rng)[0]


def question(num_words: int, rng: np.random.Generator) -> str:
    """An instruction or question of `num_words` words, e.g. "Explain ... ." or "Why ... ?"."""
    return question_batch([num_words], rng)[0]


def prose_batch(word_counts: Sequence[int] | IntArray, rng: np.random.Generator) -> list[str]:
    """One `prose` text per entry of `word_counts` (words), drawn in bulk."""
    counts = _checked_counts(word_counts)
    words, capital, suffix = _draw_prose(counts, rng)
    return _render(counts, words, capital, suffix)


def question_batch(word_counts: Sequence[int] | IntArray, rng: np.random.Generator) -> list[str]:
    """One `question` text per entry of `word_counts` (words), drawn in bulk."""
    counts = _checked_counts(word_counts)
    words, capital, suffix = _draw_prose(counts, rng)
    firsts = (np.cumsum(counts) - counts)[counts > 0]
    lasts = firsts + counts[counts > 0] - 1
    openers = rng.integers(0, len(_OPENER_WORDS), size=len(firsts))
    words[firsts] = _OPENER_WORDS[openers]
    suffix[lasts] = np.where(openers < len(QUESTION_OPENERS), _QUESTION_MARK, _PERIOD)
    return _render(counts, words, capital, suffix)


def _checked_counts(word_counts: Sequence[int] | IntArray) -> IntArray:
    """`word_counts` as a 1-d int64 array; ValueError for a negative count."""
    counts = np.asarray(word_counts, dtype=np.int64).reshape(-1)
    if np.any(counts < 0):
        raise ValueError(f"word counts must be >= 0, got {int(counts.min())}")
    return counts


def _draw_prose(
    counts: IntArray, rng: np.random.Generator
) -> tuple[IntArray, npt.NDArray[np.bool_], IntArray]:
    """Word indices, capitalisation and suffix codes of all texts, concatenated."""
    total = int(counts.sum())
    words = rng.integers(0, len(VOCABULARY), size=total)
    suffix = np.where(rng.random(total) < COMMA_PROBABILITY, _COMMA, _NO_MARK).astype(np.int64)
    lengths = _sentence_lengths(counts, rng)
    ends = np.cumsum(lengths) - 1
    starts = ends - lengths + 1
    capital = np.zeros(total, dtype=np.bool_)
    capital[starts] = True
    suffix[starts] = _NO_MARK
    suffix[ends] = rng.choice(_SENTENCE_MARKS, size=len(ends), p=_SENTENCE_MARK_WEIGHTS)
    return words, capital, suffix


def _sentence_lengths(counts: IntArray, rng: np.random.Generator) -> IntArray:
    """Sentence lengths (words) of all texts in order; each text's lengths sum to its count."""
    if len(counts) == 0:
        return np.zeros(0, dtype=np.int64)
    # Each draw is at least MIN_SENTENCE_WORDS, so count // MIN + 1 draws overrun every text.
    slots = counts // MIN_SENTENCE_WORDS + 1
    draws = rng.integers(MIN_SENTENCE_WORDS, MAX_SENTENCE_WORDS + 1, size=int(slots.sum()))
    text_of = np.repeat(np.arange(len(counts)), slots)
    first = np.cumsum(slots) - slots
    ends = np.cumsum(draws)
    local_ends = ends - (ends[first] - draws[first])[text_of]
    whole = local_ends < counts[text_of]
    num_whole = np.bincount(text_of[whole], minlength=len(counts))
    last = first + num_whole
    lengths = np.where(whole, draws, 0)
    lengths[last] = counts - np.where(num_whole > 0, local_ends[last - 1], 0)
    _merge_short_tails(lengths, last, num_whole)
    return lengths[lengths > 0]


def _merge_short_tails(lengths: IntArray, last: IntArray, num_whole: IntArray) -> None:
    """Fold a final sentence shorter than the minimum into the one before it (in place)."""
    short = (lengths[last] < MIN_SENTENCE_WORDS) & (num_whole > 0)
    tail, before = last[short], last[short] - 1
    merged = lengths[before] + lengths[tail]
    # merged is at most MAX + MIN - 1 words, so halving it keeps both halves within the range.
    fits = merged <= MAX_SENTENCE_WORDS
    lengths[before] = np.where(fits, merged, merged // 2)
    lengths[tail] = np.where(fits, 0, merged - merged // 2)


def _render(
    counts: IntArray, words: IntArray, capital: npt.NDArray[np.bool_], suffix: IntArray
) -> list[str]:
    """Join each text's word forms with single spaces."""
    codes = (words * 2 + capital) * len(_SUFFIXES) + suffix
    forms: list[str] = _FORMS[codes].tolist()
    bounds = np.cumsum(counts).tolist()
    return [" ".join(forms[end - n : end]) for n, end in zip(counts.tolist(), bounds, strict=True)]
