"""Tests for loadgen.client.protocol: every expected URL, body and value is written out by hand."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest

from loadgen.client.protocol import (
    TEXT_MARKERS,
    RequestOptions,
    build_body,
    chunk_template,
    count_template_events,
    error_of,
    fits_template,
    model_ids,
    normalize_base_url,
    output_parts,
    redact,
    rejected_field,
    usage_of,
)
from loadgen.core.records import RequestSpec


def body_of(spec: RequestSpec, options: RequestOptions) -> dict[str, Any]:
    """The request body `build_body` produces, decoded."""
    decoded: dict[str, Any] = orjson.loads(build_body(spec, options))
    return decoded


# --- normalize_base_url -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://h:8000", "http://h:8000/v1"),
        ("http://h:8000/", "http://h:8000/v1"),
        ("http://h:8000/v1", "http://h:8000/v1"),
        ("http://h:8000/v1/", "http://h:8000/v1"),
        ("http://h:8000/v1//", "http://h:8000/v1"),
        ("  http://h:8000/v1  ", "http://h:8000/v1"),
        ("https://api.example.com", "https://api.example.com/v1"),
        ("https://api.example.com/v1/", "https://api.example.com/v1"),
        # A custom path is the caller's choice: kept as given (less a trailing slash).
        ("http://h:8000/openai/v2/", "http://h:8000/openai/v2"),
        ("http://gateway/llm", "http://gateway/llm"),
        ("http://[::1]:8000", "http://[::1]:8000/v1"),
        ("http://h:8000/v1?", "http://h:8000/v1"),  # an empty query is no query
    ],
)
def test_normalize_base_url(url: str, expected: str) -> None:
    assert normalize_base_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://h:8000", "must start with http:// or https://"),
        ("h:8000/v1", "must start with http:// or https://"),
        ("not a url", "must start with http:// or https://"),
        ("", "must start with http:// or https://"),
        ("http://", "has no host"),
        ("http:///v1", "has no host"),
        ("http://h:port", "invalid port"),
        ("http://h:99999", "invalid port"),
        ("http://h:8000/v1?key=1", "must not have a query or fragment"),
        ("http://h:8000/v1#top", "must not have a query or fragment"),
    ],
)
def test_normalize_base_url_rejects(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        normalize_base_url(url)
    assert repr(url) in str(caught.value)  # the message quotes what was given


@pytest.mark.parametrize("url", ["http://user:s3cret@h:8000/v1", "http://s3cret@h:8000"])
def test_normalize_base_url_rejects_credentials_without_echoing_them(url: str) -> None:
    with pytest.raises(ValueError, match="must not hold credentials") as caught:
        normalize_base_url(url)
    assert "s3cret" not in str(caught.value)


# --- build_body ---------------------------------------------------------------------------------

SPEC = RequestSpec(prompt="Hello there", max_tokens=16)


def test_build_body_completions_streaming_defaults() -> None:
    body = body_of(SPEC, RequestOptions(model="m"))
    assert body == {
        "model": "m",
        "max_tokens": 16,
        "prompt": "Hello there",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_build_body_chat_wraps_prompt_as_user_message() -> None:
    body = body_of(SPEC, RequestOptions(endpoint="chat", model="m"))
    assert body == {
        "model": "m",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "Hello there"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_build_body_chat_passes_messages_through() -> None:
    messages = (
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Bye"},
    )
    spec = RequestSpec(prompt="ignored in chat", max_tokens=4, messages=messages)
    body = body_of(spec, RequestOptions(endpoint="chat", model="m"))
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Bye"},
    ]
    assert "prompt" not in body


def test_build_body_responses_sends_input_and_max_output_tokens() -> None:
    body = body_of(SPEC, RequestOptions(endpoint="responses", model="m", optional={"top_k": 5}))
    # Usage comes in the final event unasked: no stream_options, and no chat/completions names.
    assert body == {
        "model": "m",
        "input": "Hello there",
        "max_output_tokens": 16,
        "stream": True,
        "top_k": 5,
    }


def test_build_body_responses_passes_messages_as_input() -> None:
    messages = ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"})
    spec = RequestSpec(prompt="ignored", max_tokens=4, messages=messages)
    body = body_of(spec, RequestOptions(endpoint="responses", model="m", stream=False))
    assert body["input"] == [dict(m) for m in messages]
    assert body["stream"] is False
    assert "max_tokens" not in body
    assert "messages" not in body


def test_build_body_completions_uses_prompt_even_with_messages() -> None:
    spec = RequestSpec(prompt="p", max_tokens=4, messages=({"role": "user", "content": "m"},))
    body = body_of(spec, RequestOptions(model="m"))
    assert body["prompt"] == "p"
    assert "messages" not in body


def test_build_body_no_stream_has_no_stream_options() -> None:
    body = body_of(SPEC, RequestOptions(model="m", stream=False))
    assert body["stream"] is False
    assert "stream_options" not in body


def test_build_body_stream_without_usage_has_no_stream_options() -> None:
    body = body_of(SPEC, RequestOptions(model="m", include_usage=False))
    assert body["stream"] is True
    assert "stream_options" not in body


def test_build_body_optional_fields_absent_unless_set() -> None:
    body = body_of(SPEC, RequestOptions(model="m"))
    for key in ("ignore_eos", "min_tokens", "temperature", "top_k", "top_p"):
        assert key not in body


def test_build_body_optional_fields_when_set() -> None:
    options = RequestOptions(
        model="m",
        optional={
            "ignore_eos": True,
            "min_tokens": 3,
            "temperature": 0.0,
            "top_k": 1,
            "top_p": 0.5,
        },
    )
    body = body_of(SPEC, options)
    assert body["ignore_eos"] is True
    assert body["min_tokens"] == 3
    assert body["temperature"] == 0.0  # falsy values are still sent
    assert body["top_k"] == 1
    assert body["top_p"] == 0.5


def test_build_body_ignore_eos_false_is_sent() -> None:
    body = body_of(SPEC, RequestOptions(model="m", optional={"ignore_eos": False}))
    assert body["ignore_eos"] is False


def test_build_body_extra_body_merged_last_and_overrides() -> None:
    options = RequestOptions(
        model="m",
        extra_body={"temperature": 0.1, "max_tokens": 99, "seed": 7, "stream_options": None},
        optional={"temperature": 0.7},
    )
    body = body_of(SPEC, options)
    assert body["temperature"] == 0.1
    assert body["max_tokens"] == 99
    assert body["seed"] == 7
    assert body["stream_options"] is None
    assert body["prompt"] == "Hello there"


# --- output_parts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"object": "text_completion", "choices": [{"index": 0, "text": " the"}]}, (" the", "")),
        ({"choices": [{"index": 0, "delta": {"content": " cat"}}]}, (" cat", "")),
        ({"choices": [{"index": 0, "delta": {"role": "assistant"}}]}, ("", "")),
        ({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}, ("", "")),
        ({"choices": [{"index": 0, "delta": {"content": None}}]}, ("", "")),
        ({"choices": [{"index": 0, "delta": {"reasoning_content": "hmm"}}]}, ("", "hmm")),
        ({"choices": [{"index": 0, "delta": {"content": "", "reasoning": "so"}}]}, ("", "so")),
        (
            {"choices": [{"delta": {"content": None, "reasoning": "a", "reasoning_content": "a"}}]},
            ("", "a"),
        ),
        ({"choices": [{"index": 0, "delta": {}}]}, ("", "")),
        ({"choices": [{"index": 0, "text": "", "finish_reason": "length"}]}, ("", "")),
        ({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5}}, ("", "")),
        ({"usage": {"prompt_tokens": 3}}, ("", "")),
        ({}, ("", "")),
        (
            {
                "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}}],
            },
            ("Hi!", ""),
        ),
        (
            {
                "object": "chat.completion",
                "choices": [{"message": {"content": "42", "reasoning_content": "think"}}],
            },
            ("42", "think"),
        ),
        # Responses API stream events.
        (
            {"type": "response.output_text.delta", "delta": " yes", "sequence_number": 5},
            (" yes", ""),
        ),
        (
            {"type": "response.reasoning_text.delta", "delta": "why", "sequence_number": 4},
            ("", "why"),
        ),
        ({"type": "response.output_text.done", "text": "the whole answer"}, ("", "")),
        ({"type": "response.created", "response": {"object": "response", "output": []}}, ("", "")),
        # A whole Responses API response.
        (
            {
                "object": "response",
                "output": [
                    {"type": "reasoning", "content": [{"type": "reasoning_text", "text": "r1"}]},
                    {
                        "type": "message",
                        "content": [
                            {"type": "output_text", "text": "a1"},
                            {"type": "refusal", "refusal": "no"},
                            {"type": "output_text", "text": "a2"},
                        ],
                    },
                    {"type": "function_call", "arguments": "{}"},
                ],
            },
            ("a1a2", "r1"),
        ),
    ],
)
def test_output_parts(obj: dict[str, Any], expected: tuple[str, str]) -> None:
    assert output_parts(obj) == expected


# --- usage_of -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (
            {"usage": {"prompt_tokens": 12, "completion_tokens": 34, "total_tokens": 46}},
            (12, 34, None),
        ),
        ({"usage": {"prompt_tokens": 12}}, (12, None, None)),
        ({"usage": {"completion_tokens": 34}}, (None, 34, None)),
        ({"usage": None}, (None, None, None)),
        ({"usage": {}}, (None, None, None)),
        ({"choices": [{"text": "x"}]}, (None, None, None)),
        ({"usage": {"prompt_tokens": "12", "completion_tokens": 3.0}}, (None, None, None)),
        ({"usage": {"prompt_tokens": True, "completion_tokens": 3}}, (None, 3, None)),
        (
            {
                "usage": {
                    "prompt_tokens": 7,
                    "completion_tokens": 30,
                    "completion_tokens_details": {"reasoning_tokens": 20},
                }
            },
            (7, 30, 20),
        ),
        # The Responses API: usage in the final event's response, under its own names.
        (
            {
                "type": "response.completed",
                "response": {
                    "usage": {
                        "input_tokens": 9,
                        "output_tokens": 50,
                        "output_tokens_details": {"reasoning_tokens": 12},
                        "total_tokens": 59,
                    }
                },
            },
            (9, 50, 12),
        ),
        (
            {"type": "response.incomplete", "response": {"usage": {"output_tokens": 8}}},
            (None, 8, None),
        ),
        ({"type": "response.created", "response": {"usage": None}}, (None, None, None)),
        (
            {"type": "response.in_progress", "response": {"usage": {"output_tokens": 8}}},
            (None, None, None),
        ),
        ({"object": "response", "usage": {"input_tokens": 3, "output_tokens": 4}}, (3, 4, None)),
    ],
)
def test_usage_of(obj: dict[str, Any], expected: tuple[int | None, ...]) -> None:
    assert usage_of(obj) == (*expected, None)  # and no cached-token count


def test_usage_of_cached_prompt_tokens_on_both_apis() -> None:
    chat = {"usage": {"prompt_tokens": 90, "prompt_tokens_details": {"cached_tokens": 64}}}
    assert usage_of(chat) == (90, None, None, 64)
    final = {
        "type": "response.completed",
        "response": {"usage": {"input_tokens": 90, "input_tokens_details": {"cached_tokens": 32}}},
    }
    assert usage_of(final).cached == 32
    assert usage_of({"usage": {"prompt_tokens_details": None}}).cached is None


# --- error_of -----------------------------------------------------------------------------------


def test_error_of_openai_shape() -> None:
    # vLLM's OpenAI-style error: {"error": {"message", "type", "code"}}
    obj = {"error": {"message": "context too long", "type": "BadRequestError", "code": 400}}
    assert error_of(obj) == "context too long"


def test_error_of_vllm_error_object_shape() -> None:
    # vLLM's ErrorResponse: a top-level object of type "error".
    obj = {"object": "error", "message": "model not found", "type": "NotFoundError", "code": 404}
    assert error_of(obj) == "model not found"


def test_error_of_error_object_without_message() -> None:
    assert error_of({"object": "error"}) == "error object"


def test_error_of_plain_string_error() -> None:
    assert error_of({"error": "overloaded"}) == "overloaded"


def test_error_of_error_without_message_keeps_the_object() -> None:
    assert error_of({"error": {"code": 500}}) == "{'code': 500}"


def test_error_of_responses_error_event() -> None:
    event = {"type": "error", "code": "server_error", "message": "engine died", "param": None}
    assert error_of(event) == "engine died"


def test_error_of_responses_failed_event() -> None:
    event = {
        "type": "response.failed",
        "response": {"status": "failed", "error": {"code": "x", "message": "out of memory"}},
    }
    assert error_of(event) == "out of memory"
    assert error_of({"type": "response.failed", "response": {}}) == "response failed"


@pytest.mark.parametrize(
    "obj",
    [
        {"choices": [{"text": "ok"}]},
        {"error": None, "choices": []},
        {"object": "text_completion", "message": "not an error"},
        {"type": "response.output_text.delta", "delta": "x"},
        {"object": "response", "status": "completed", "error": None},
        {},
    ],
)
def test_error_of_none_for_ordinary_chunks(obj: dict[str, Any]) -> None:
    assert error_of(obj) is None


# --- model_ids ----------------------------------------------------------------------------------


def test_model_ids_in_order() -> None:
    obj = {"object": "list", "data": [{"id": "llama", "object": "model"}, {"id": "mistral"}]}
    assert model_ids(obj) == ["llama", "mistral"]


def test_model_ids_empty_list() -> None:
    assert model_ids({"data": []}) == []


def test_model_ids_skips_entries_without_id() -> None:
    assert model_ids({"data": [{"name": "x"}, "junk", {"id": 7}]}) == ["7"]


@pytest.mark.parametrize(
    "obj",
    [
        {"models": [{"id": "x"}]},
        {"data": {"id": "x"}},
        {"data": None},
        [{"id": "x"}],
        "data",
        None,
    ],
)
def test_model_ids_rejects_other_shapes(obj: Any) -> None:
    with pytest.raises(ValueError, match="'data' list"):
        model_ids(obj)


# --- redact -------------------------------------------------------------------------------------


def test_redact_replaces_every_secret_everywhere() -> None:
    text = "auth sk-123 failed; header tok-9 and sk-123 again"
    assert redact(text, ("sk-123", "tok-9")) == "auth *** failed; header *** and *** again"


def test_redact_ignores_empty_secrets() -> None:
    assert redact("plain text", ("",)) == "plain text"


def test_redact_without_secrets_is_identity() -> None:
    assert redact("plain text", ()) == "plain text"


# --- chunk_template / fits_template: the byte-level hot path ------------------------------

VLLM_TOKEN = (
    b'{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":'
    b'[{"index":0,"text":" tok","logprobs":null,"finish_reason":null,"stop_reason":null}]}'
)
VLLM_PREFIX = (
    b'{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":'
    b'[{"index":0,"text":"'
)
VLLM_SUFFIX = b'","logprobs":null,"finish_reason":null,"stop_reason":null}]}'
SPACED_TOKEN = b'{"object": "text_completion", "choices": [{"index": 0, "text": " tok"}]}'
CHAT_TOKEN = b'{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}'
COMPLETIONS = TEXT_MARKERS["completions"]
CHAT = TEXT_MARKERS["chat"]


def test_chunk_template_splits_around_the_text() -> None:
    assert chunk_template(VLLM_TOKEN, COMPLETIONS) == (VLLM_PREFIX, VLLM_SUFFIX)
    assert chunk_template(SPACED_TOKEN, COMPLETIONS) == (
        b'{"object": "text_completion", "choices": [{"index": 0, "text": "',
        b'"}]}',
    )
    assert chunk_template(CHAT_TOKEN, CHAT) == (
        b'{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"',
        b'"}}]}',
    )


@pytest.mark.parametrize(
    ("payload", "markers"),
    [
        (b'{"choices":[{"index":0,"text":""}]}', COMPLETIONS),  # empty text
        (b'{"choices":[{"index":0,"text":"say \\"hi\\""}]}', COMPLETIONS),  # quote in text
        (b'{"choices":[{"index":0,"text":"a\\\\"}]}', COMPLETIONS),  # ends in an escape
        (b'{"choices":[{"index":0,"text":"a"},{"index":1,"text":"b"}]}', COMPLETIONS),
        (CHAT_TOKEN, COMPLETIONS),  # no text key of that endpoint
    ],
)
def test_chunk_template_refuses_what_it_cannot_trust(
    payload: bytes, markers: tuple[bytes, bytes]
) -> None:
    assert chunk_template(payload, markers) is None


TEMPLATE = (VLLM_PREFIX, VLLM_SUFFIX)


@pytest.mark.parametrize(
    "text", [b" tok", b"x", b"\\u00e9t\\u00e9", b" a longer piece, with commas"]
)
def test_fits_template_accepts_same_chunk_with_other_text(text: bytes) -> None:
    assert fits_template(VLLM_PREFIX + text + VLLM_SUFFIX, TEMPLATE)


@pytest.mark.parametrize(
    "payload",
    [
        VLLM_PREFIX + VLLM_SUFFIX,  # empty text: no token
        VLLM_PREFIX + b'a","usage":{"completion_tokens":9},"x":"b' + VLLM_SUFFIX,  # smuggled key
        VLLM_PREFIX + b'a\\"b' + VLLM_SUFFIX,  # escaped quote: decode it instead
        VLLM_PREFIX + b"a\\" + VLLM_SUFFIX,  # trailing backslash escapes the closing quote
        VLLM_PREFIX + b"a" + b'","logprobs":null,"finish_reason":"length","stop_reason":null}]}',
        b'{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}',
        b"[DONE]",
        b'{"error":{"message":"boom"}}',
        VLLM_PREFIX + b"a",  # truncated
    ],
)
def test_fits_template_rejects_everything_else(payload: bytes) -> None:
    assert not fits_template(payload, TEMPLATE)


def sse(*payloads: bytes) -> bytes:
    return b"".join(b"data: " + payload + b"\n\n" for payload in payloads)


def test_count_template_events_counts_a_read_of_plain_chunks() -> None:
    read = sse(*(VLLM_PREFIX + text + VLLM_SUFFIX for text in (b" a", b" b", b"\\u00e9")))
    assert count_template_events(read, TEMPLATE) == 3
    assert count_template_events(sse(VLLM_PREFIX + b"x" + VLLM_SUFFIX), TEMPLATE) == 1


PLAIN = VLLM_PREFIX + b" a" + VLLM_SUFFIX


@pytest.mark.parametrize(
    "read",
    [
        b"",
        sse(PLAIN)[:-1],  # the event is not finished
        sse(PLAIN) + b"data: " + VLLM_PREFIX,  # ends inside the next event
        sse(PLAIN, b'{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}'),
        sse(PLAIN, b"[DONE]"),
        sse(PLAIN, VLLM_PREFIX + VLLM_SUFFIX),  # empty text
        sse(PLAIN, VLLM_PREFIX + b'say \\"x\\"' + VLLM_SUFFIX),  # quotes in a text
        sse(PLAIN, VLLM_PREFIX + b"a\\" + VLLM_SUFFIX),  # escapes the closing quote
        sse(VLLM_PREFIX + b"x" + VLLM_SUFFIX[:-1] + b',"usage":{}}'),  # other bytes after text
        b": keep-alive\n\n" + sse(PLAIN),  # a comment
        b"event: token\n" + sse(PLAIN),  # another field
        sse(PLAIN).replace(b"\n", b"\r\n"),  # CRLF framing
        sse(PLAIN) + b"\n\n",  # a stray blank line
        # A malformed chunk whose prefix and suffix share the text's quote, hiding one quote
        # that another chunk's text then supplies: the quote count alone would balance.
        sse(VLLM_PREFIX + VLLM_SUFFIX[1:], VLLM_PREFIX + b'a"b' + VLLM_SUFFIX),
    ],
)
def test_count_template_events_refuses_anything_else(read: bytes) -> None:
    assert count_template_events(read, TEMPLATE) == 0


def test_build_body_leaves_out_omitted_fields() -> None:
    options = RequestOptions(
        optional={"ignore_eos": True, "min_tokens": 3}, omit=frozenset({"ignore_eos"})
    )
    body = orjson.loads(build_body(RequestSpec("hi", 4), options))
    assert "ignore_eos" not in body
    assert body["min_tokens"] == 3
    assert body["stream_options"] == {"include_usage": True}
    no_usage = replace(options, omit=frozenset({"stream_options"}))
    assert "stream_options" not in orjson.loads(build_body(RequestSpec("hi", 4), no_usage))


@pytest.mark.parametrize(
    ("status", "detail", "expected"),
    [
        (422, "Unexpected fields in the request: {'ignore_eos'}", "ignore_eos"),
        (400, '{"message": "unknown field \\"min_tokens\\""}', "min_tokens"),
        (422, "Unexpected fields in the request: {'top_k', 'ignore_eos'}", "ignore_eos"),
        (422, "Unexpected fields in the request: {'seed'}", None),  # not one we sent
        (404, "Unexpected fields in the request: {'ignore_eos'}", None),  # not a field refusal
        (400, "ignore_eos is fine but the prompt is too long", None),  # not quoted as a field
    ],
)
def test_rejected_field(status: int, detail: str, expected: str | None) -> None:
    sent = build_body(
        RequestSpec("hi", 4),
        RequestOptions(optional={"ignore_eos": True, "min_tokens": 2, "top_k": 1}),
    )
    assert rejected_field(status, detail, sent) == expected
