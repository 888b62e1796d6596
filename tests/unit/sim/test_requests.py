"""Tests for loadgen.sim.requests: request validation as vLLM (or DeepSpeed-MII) would do it."""

from __future__ import annotations

from typing import Any

import pytest

from loadgen.sim.requests import (
    FLAVORS,
    BadRequest,
    Flavor,
    ParsedRequest,
    parse_request,
    parse_responses_request,
)

MODEL = "served-model"
CHAT = [{"role": "user", "content": "one two three"}]


def parse(body: Any, *, chat: bool = False, flavor: Flavor = "vllm") -> ParsedRequest:
    return parse_request(body, chat=chat, flavor=flavor, served_model=MODEL)


# (body, chat, vllm status, mii status); None means accepted.
TABLE: list[tuple[Any, bool, int | None, int | None]] = [
    ({"prompt": "a b"}, False, None, None),
    ({"prompt": "a b", "model": MODEL}, False, None, None),
    ({"prompt": "a b", "model": "other"}, False, 404, 404),
    ({"messages": CHAT, "model": "other"}, True, 404, 404),
    ([{"prompt": "a"}], False, 400, 400),
    ("prompt", False, 400, 400),
    ({}, False, 400, 400),
    ({"prompt": ""}, False, 400, 400),
    ({"prompt": []}, False, 400, 400),
    ({"prompt": ["a", "b"]}, False, 400, 400),
    ({"prompt": [1, "b"]}, False, 400, 400),
    ({"prompt": 7}, False, 400, 400),
    ({"messages": []}, True, 400, 400),
    ({"messages": "hi"}, True, 400, 400),
    ({"messages": [{"content": "no role"}]}, True, 400, 400),
    ({"messages": ["just text"]}, True, 400, 400),
    ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, True, 400, 400),
    ({"messages": [{"role": "user", "content": None}]}, True, None, None),
    ({"prompt": "a", "stream": "true"}, False, 400, 400),
    ({"prompt": "a", "stream": None}, False, None, None),
    ({"prompt": "a", "stream": True, "stream_options": "usage"}, False, 400, 400),
    ({"prompt": "a", "stream": True, "stream_options": {"include_usage": 1}}, False, 400, None),
    ({"prompt": "a", "ignore_eos": "yes"}, False, 400, None),
    ({"prompt": "a", "temperature": 0}, False, None, 400),
    ({"prompt": "a", "temperature": 0.0}, False, None, 400),
    ({"prompt": "a", "temperature": 0.7}, False, None, None),
    ({"prompt": "a", "temperature": -0.5}, False, 400, 400),
    ({"prompt": "a", "temperature": "hot"}, False, 400, 400),
    ({"prompt": "a", "temperature": True}, False, 400, 400),
    ({"prompt": "a", "n": 2}, False, 400, 400),
    ({"prompt": "a", "n": 1}, False, None, None),
    ({"prompt": "a", "max_tokens": 0}, False, 400, 400),
    ({"prompt": "a", "max_tokens": 1}, False, None, None),
    ({"prompt": "a", "max_tokens": 2.0}, False, 400, 400),
    ({"prompt": "a", "max_tokens": True}, False, 400, 400),
    ({"prompt": "a", "max_tokens": "8"}, False, 400, 400),
    ({"messages": CHAT, "max_completion_tokens": 0}, True, 400, 400),
    ({"prompt": "a", "min_tokens": -1}, False, 400, 400),
    ({"prompt": "a", "min_tokens": 0}, False, None, None),
]


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize(("body", "chat", "vllm", "mii"), TABLE)
def test_validation_table(
    body: Any, chat: bool, vllm: int | None, mii: int | None, flavor: Flavor
) -> None:
    expected = vllm if flavor == "vllm" else mii
    if expected is None:
        parse(body, chat=chat, flavor=flavor)
        return
    with pytest.raises(BadRequest) as caught:
        parse(body, chat=chat, flavor=flavor)
    assert caught.value.status == expected
    assert str(caught.value)


def test_unknown_model_message_names_it() -> None:
    with pytest.raises(BadRequest, match="The model `gpt-4` does not exist"):
        parse({"prompt": "a", "model": "gpt-4"})


@pytest.mark.parametrize(
    ("prompt", "tokens"),
    [
        ("one", 1),
        ("one two  three\nfour", 4),
        (["one two"], 2),  # a batch of one prompt
        ([5, 6, 7], 3),  # token ids
        ([[5, 6]], 2),  # a batch of one list of token ids
        ([[5], [6]], None),  # a batch of two: the simulator takes one prompt per request
        ([[]], None),
    ],
)
def test_completion_prompt_tokens(prompt: Any, tokens: int | None) -> None:
    if tokens is None:
        with pytest.raises(BadRequest):
            parse({"prompt": prompt})
        return
    assert parse({"prompt": prompt}).prompt_tokens == tokens


def test_chat_prompt_tokens_add_up_every_message() -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "one two three"},
        {"role": "assistant", "content": None},
    ]
    assert parse({"messages": messages}, chat=True).prompt_tokens == 5
    empty = [{"role": "user", "content": None}]
    assert parse({"messages": empty}, chat=True).prompt_tokens == 1


def test_max_tokens_defaults() -> None:
    assert parse({"prompt": "a"}).max_tokens == 16  # OpenAI's completions default
    assert parse({"messages": CHAT}, chat=True).max_tokens is None  # up to the context
    assert parse({"messages": CHAT, "max_tokens": 9}, chat=True).max_tokens == 9
    both = {"messages": CHAT, "max_tokens": 9, "max_completion_tokens": 5}
    assert parse(both, chat=True).max_tokens == 5
    # max_completion_tokens is a chat field only.
    assert parse({"prompt": "a", "max_completion_tokens": 5}).max_tokens == 16


def test_vllm_keeps_the_output_options() -> None:
    body = {
        "prompt": "a b c",
        "max_tokens": 40,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
        "min_tokens": 12,
    }
    assert parse(body) == ParsedRequest(
        endpoint="completions",
        prompt_tokens=3,
        max_tokens=40,
        stream=True,
        include_usage=True,
        ignore_eos=True,
        min_tokens=12,
        prompt=("a", "b", "c"),
    )


def test_mii_drops_usage_ignore_eos_and_min_tokens() -> None:
    body = {
        "messages": CHAT,
        "max_tokens": 40,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
        "min_tokens": 12,
        "temperature": 0.5,
    }
    parsed = parse(body, chat=True, flavor="mii")
    assert (parsed.include_usage, parsed.ignore_eos, parsed.min_tokens) == (False, False, 0)
    assert (parsed.chat, parsed.stream, parsed.max_tokens, parsed.prompt_tokens) == (
        True,
        True,
        40,
        3,
    )


def test_usage_only_for_streams() -> None:
    body = {"prompt": "a", "stream_options": {"include_usage": True}}
    assert parse(body).include_usage is False  # whole answers always carry usage
    assert parse(body | {"stream": True}).include_usage is True
    assert parse({"prompt": "a", "stream": True}).include_usage is False
    assert parse({"prompt": "a", "stream": True, "stream_options": None}).include_usage is False


# ---- token content -------------------------------------------------------------------------


def test_prompts_keep_their_token_content() -> None:
    assert parse({"prompt": "one two  three"}).prompt == ("one", "two", "three")
    assert parse({"prompt": [5, 6, 7]}).prompt == (5, 6, 7)
    chat = parse({"messages": [{"role": "user", "content": "a b"}]}, chat=True)
    assert chat.prompt == (("user", "a"), "b")
    assert len(parse({"prompt": " "}).prompt) == parse({"prompt": " "}).prompt_tokens == 1


def test_chat_counts_keep_every_text_message_at_one_token_at_least() -> None:
    messages = [{"role": "system", "content": ""}, {"role": "user", "content": "a b"}]
    parsed = parse({"messages": messages}, chat=True)
    assert parsed.prompt_tokens == len(parsed.prompt) == 3


# ---- the Responses API ---------------------------------------------------------------------


def parse_responses(body: Any) -> ParsedRequest:
    return parse_responses_request(body, served_model=MODEL)


def test_responses_text_input_is_one_user_message() -> None:
    parsed = parse_responses({"input": "one two three", "max_output_tokens": 9, "stream": True})
    assert parsed.endpoint == "responses"
    assert (parsed.prompt_tokens, parsed.max_tokens, parsed.stream) == (3, 9, True)
    # The same tokens a chat of that user message has, so the two share cached blocks.
    assert parsed.prompt == parse({"messages": CHAT}, chat=True).prompt
    assert parsed.include_usage  # the last event always carries usage
    assert not parsed.chat


def test_responses_messages_instructions_and_content_parts_count() -> None:
    said = [{"type": "output_text", "text": "x"}]
    asked = [{"type": "input_text", "text": "three"}, {"type": "input_text", "text": "four"}]
    body = {
        "instructions": "be brief",
        "input": [
            {"role": "user", "content": "one two"},
            {"type": "message", "role": "assistant", "content": said},
            {"role": "user", "content": asked},
        ],
        "temperature": 0.2,
        "ignore_eos": True,
        "min_tokens": 3,
    }
    parsed = parse_responses(body)
    assert parsed.prompt_tokens == 2 + 2 + 1 + 2
    assert parsed.prompt[0] == ("system", "be")
    assert (parsed.ignore_eos, parsed.min_tokens, parsed.temperature) == (True, 3, 0.2)
    assert parsed.instructions == "be brief"
    assert parsed.max_tokens is None  # up to the context, as vLLM


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"input": "a", "model": "other"}, 404),
        ({}, 400),
        ({"input": ""}, 400),
        ({"input": []}, 400),
        ({"input": 7}, 400),
        ({"input": [{"type": "function_call", "name": "f"}]}, 400),
        ({"input": [{"role": "user", "content": [{"type": "input_image"}]}]}, 400),
        ({"input": [{"content": "no role"}]}, 400),
        ({"input": "a", "instructions": 5}, 400),
        ({"input": "a", "max_output_tokens": 0}, 400),
        ({"input": "a", "stream": "yes"}, 400),
        ({"input": "a", "temperature": -1}, 400),
        ("input", 400),
    ],
)
def test_responses_bad_requests(body: Any, status: int) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_responses(body)
    assert caught.value.status == status
