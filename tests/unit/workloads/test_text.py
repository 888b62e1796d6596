"""Tests for loadgen.workloads.text: word counts, sentence shape, variety, determinism."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest

from loadgen.workloads.text import (
    COMMON_WORDS,
    IMPERATIVE_OPENERS,
    MAX_SENTENCE_WORDS,
    MIN_SENTENCE_WORDS,
    QUESTION_OPENERS,
    VOCABULARY,
    prose,
    prose_batch,
    question,
    question_batch,
)

SENTENCE_END = re.compile(r"(?<=[.?!]) ")


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def sentences(text: str) -> list[str]:
    return SENTENCE_END.split(text)


def bare(word: str) -> str:
    return word.rstrip(",.?!").lower()


def test_vocabulary_is_a_few_hundred_distinct_lowercase_words() -> None:
    assert len(VOCABULARY) >= 400
    assert len(set(VOCABULARY)) == len(VOCABULARY)
    assert all(word.isalpha() and word.islower() for word in VOCABULARY)
    # SyntheticWorkload's prompts depend on COMMON_WORDS staying a prefix, in order.
    assert VOCABULARY[: len(COMMON_WORDS)] == COMMON_WORDS
    assert set(IMPERATIVE_OPENERS + QUESTION_OPENERS) <= set(VOCABULARY)


@pytest.mark.parametrize("num_words", [0, 1, 5, 6, 7, 18, 19, 23, 24, 25, 100, 1000])
def test_prose_has_exactly_num_words_words(num_words: int) -> None:
    text = prose(num_words, rng(num_words))
    assert len(text.split()) == num_words
    assert text == " ".join(text.split())  # single spaces, no leading or trailing space


@pytest.mark.parametrize(("num_words", "seed"), [(6, 0), (19, 1), (24, 2), (100, 3), (3000, 4)])
def test_prose_sentences_are_capitalised_punctuated_and_6_to_18_words(
    num_words: int, seed: int
) -> None:
    for sentence in sentences(prose(num_words, rng(seed))):
        words = sentence.split()
        assert MIN_SENTENCE_WORDS <= len(words) <= MAX_SENTENCE_WORDS, sentence
        assert words[0][0].isupper(), sentence
        assert words[0].isalpha(), sentence
        assert all(word.islower() for word in words[1:]), sentence
        assert words[-1][-1] in ".?!", sentence
        assert all(word.rstrip(",").isalpha() for word in words[:-1]), sentence
        assert all(bare(word) in VOCABULARY for word in words), sentence


@pytest.mark.parametrize("num_words", [1, 2, 5])
def test_prose_under_six_words_is_one_sentence(num_words: int) -> None:
    text = prose(num_words, rng(9))
    assert len(sentences(text)) == 1
    assert text[0].isupper()
    assert text[-1] in ".?!"


def test_prose_uses_all_sentence_marks_and_occasional_commas() -> None:
    words = prose(5000, rng(11)).split()
    endings = {word[-1] for word in words if word[-1] in ".?!"}
    assert endings == {".", "?", "!"}
    # Commas follow 8% of words that start no sentence (about 7.3% of all): 2%..15% is far
    # outside the binomial spread of 5000 draws (std about 0.4%).
    comma_share = sum(word.endswith(",") for word in words) / len(words)
    assert 0.02 < comma_share < 0.15


@pytest.mark.parametrize("seed", range(5))
def test_prose_is_varied_not_one_repeated_word(seed: int) -> None:
    words = {bare(word) for word in prose(100, rng(seed)).split()}
    assert len(words) >= 30


def test_same_seed_same_text() -> None:
    assert prose(200, rng(5)) == prose(200, rng(5))
    assert question(30, rng(5)) == question(30, rng(5))


def test_different_seeds_different_text() -> None:
    texts = {prose(50, rng(seed)) for seed in range(20)}
    assert len(texts) == 20
    questions = {question(20, rng(seed)) for seed in range(20)}
    assert len(questions) == 20


def test_batch_matches_single_draw_for_one_text() -> None:
    assert prose_batch([40], rng(3)) == [prose(40, rng(3))]
    assert question_batch([40], rng(3)) == [question(40, rng(3))]


def test_batch_gives_each_text_its_word_count_and_distinct_texts() -> None:
    counts = [0, 1, 7, 20, 0, 55, 300, 3]
    for batch in (prose_batch, question_batch):
        texts = batch(counts, rng(4))
        assert [len(text.split()) for text in texts] == counts
        assert texts[0] == texts[4] == ""
        non_empty = [text for text in texts if text]
        assert len(set(non_empty)) == len(non_empty)


def test_empty_batch() -> None:
    assert prose_batch([], rng(0)) == []
    assert question_batch([], rng(0)) == []


@pytest.mark.parametrize("num_words", [1, 2, 8, 17, 40, 200])
def test_question_starts_with_opener_and_ends_to_match(num_words: int) -> None:
    for seed in range(20):
        text = question(num_words, rng(seed))
        words = text.split()
        assert len(words) == num_words
        opener = bare(words[0])
        assert opener in QUESTION_OPENERS + IMPERATIVE_OPENERS
        assert words[0][0].isupper()
        assert text[-1] == ("?" if opener in QUESTION_OPENERS else ".")


def test_questions_use_both_kinds_of_opener() -> None:
    endings = {text[-1] for text in question_batch([12] * 200, rng(6))}
    assert endings == {"?", "."}


def test_question_sentences_are_well_formed() -> None:
    for sentence in sentences(question(500, rng(8))):
        words = sentence.split()
        assert MIN_SENTENCE_WORDS <= len(words) <= MAX_SENTENCE_WORDS, sentence
        assert words[0][0].isupper(), sentence
        assert words[-1][-1] in ".?!", sentence


@pytest.mark.parametrize("draw", [prose, question])
def test_negative_word_count_is_rejected(draw: Callable[[int, np.random.Generator], str]) -> None:
    with pytest.raises(ValueError, match=">= 0"):
        draw(-1, rng(0))
