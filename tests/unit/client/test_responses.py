"""Tests for loadgen.client.responses: how the events of each read become token chunk times."""

from __future__ import annotations

import orjson
import pytest

from loadgen.client.protocol import TEXT_MARKERS
from loadgen.client.responses import (
    Progress,
    RequestFailed,
    apply_events,
    reasoning_tokens,
    tokens_out,
)

COMPLETIONS = TEXT_MARKERS["completions"]
CHAT = TEXT_MARKERS["chat"]


def token(text: str, finish: str = "null") -> bytes:
    """A vLLM-shaped completion chunk carrying `text`."""
    return (
        b'{"id":"cmpl-7","object":"text_completion","created":5,"model":"m","choices":'
        b'[{"index":0,"text":"'
        + text.encode()
        + b'","logprobs":null,"finish_reason":'
        + finish.encode()
        + b"}]}"
    )


USAGE = b'{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":9}}'


def test_first_read_decodes_and_later_reads_count_plain_chunks() -> None:
    progress = Progress(t_send_ns=0)
    assert apply_events([token(" a"), token(" b")], 100, progress, COMPLETIONS) is True
    assert progress.t_first_ns == 100
    assert progress.template is not None  # learned from the decoded first chunk
    assert (
        apply_events([token(" c"), token(" d"), token(" e")], 200, progress, COMPLETIONS) is False
    )
    assert (
        apply_events([token(" f", '"length"'), USAGE, b"[DONE]"], 300, progress, COMPLETIONS)
        is False
    )
    assert list(progress.chunk_times_ns) == [100, 100, 200, 200, 200, 300]
    assert progress.t_last_ns == 300
    assert tokens_out(progress) == (9, "server")  # usage wins over the 6 chunks seen
    assert progress.prompt_tokens == 12
    assert progress.chunk_tokens is None  # no per-chunk usage


def test_without_usage_each_chunk_is_an_estimated_token() -> None:
    progress = Progress(t_send_ns=0)
    apply_events([token(" a")], 10, progress, COMPLETIONS)
    apply_events([token(" b"), token(" c")], 20, progress, COMPLETIONS)
    assert tokens_out(progress) == (3, "estimate")


def test_role_and_empty_chunks_are_not_tokens() -> None:
    progress = Progress(t_send_ns=0)
    role = b'{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}'
    content = b'{"choices":[{"index":0,"delta":{"content":"hi"}}]}'
    assert apply_events([role], 50, progress, CHAT) is False
    assert progress.t_first_ns is None
    assert apply_events([content, content], 80, progress, CHAT) is True
    assert progress.t_first_ns == 80
    assert list(progress.chunk_times_ns) == [80, 80]


def test_per_chunk_usage_keeps_each_chunks_token_count() -> None:
    progress = Progress(t_send_ns=0)

    def chunk(text: str, done: int) -> bytes:
        usage = b',"usage":{"prompt_tokens":4,"completion_tokens":' + str(done).encode() + b"}"
        return b'{"choices":[{"index":0,"text":"' + text.encode() + b'"}]' + usage + b"}"

    apply_events([chunk("ab", 2)], 10, progress, COMPLETIONS)
    apply_events([chunk("cde", 5), chunk("f", 6)], 20, progress, COMPLETIONS)
    assert list(progress.chunk_tokens or ()) == [2, 3, 1]
    assert tokens_out(progress) == (6, "server")


def test_a_chunk_smuggling_a_key_into_the_template_is_decoded() -> None:
    progress = Progress(t_send_ns=0)
    apply_events([token(" a")], 10, progress, COMPLETIONS)
    # Same bytes around the "text", but the text closes the choice and adds a top-level
    # error: only a full decode sees it.
    odd = token('x"}],"error":{"message":"smuggled"},"more":[{"t":"')
    with pytest.raises(RequestFailed, match="smuggled"):
        apply_events([odd], 20, progress, COMPLETIONS)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{not json", "malformed event"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"error":{"message":"engine died"}}', "engine died"),
        (b'{"object":"error","message":"too long"}', "too long"),
    ],
)
def test_bad_events_fail_the_request_even_mid_stream(payload: bytes, message: str) -> None:
    progress = Progress(t_send_ns=0)
    apply_events([token(" a")], 10, progress, COMPLETIONS)
    with pytest.raises(RequestFailed, match=message) as caught:
        apply_events([token(" b"), payload], 20, progress, COMPLETIONS)
    assert caught.value.kind == "bad_stream"


def test_kept_text_is_counted_by_the_tokenizer_when_no_usage_comes() -> None:
    progress = Progress(t_send_ns=0, collect_text=True)
    apply_events([token(" a"), token(" b")], 10, progress, COMPLETIONS)
    apply_events([token(" c"), b"[DONE]"], 20, progress, COMPLETIONS)
    assert progress.template is None  # every chunk decoded, so its text is known
    assert progress.texts == [" a", " b", " c"]

    def characters(text: str) -> int:
        return len(text)

    assert tokens_out(progress, characters) == (6, "tokenizer")  # " a b c": 6 characters
    assert tokens_out(progress) == (3, "estimate")  # no tokenizer: one per chunk


def test_server_usage_wins_over_the_tokenizer() -> None:
    progress = Progress(t_send_ns=0, collect_text=True)
    apply_events([token(" a"), USAGE], 10, progress, COMPLETIONS)
    assert tokens_out(progress, len) == (9, "server")


def chat_delta(field: str, text: str) -> bytes:
    """A vLLM-shaped chat chunk whose delta carries `text` in `field`."""
    return (
        b'{"id":"chatcmpl-1","object":"chat.completion.chunk","created":5,"model":"m",'
        b'"choices":[{"index":0,"delta":{"' + field.encode() + b'":"' + text.encode() + b'"},'
        b'"logprobs":null,"finish_reason":null}]}'
    )


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_then_answer_times_first_answer_and_counts_each_kind(field: str) -> None:
    progress = Progress(t_send_ns=0)
    think = [chat_delta(field, f"r{i}") for i in range(5)]
    assert apply_events(think[:2], 10, progress, CHAT) is True  # TTFT: reasoning counts
    assert progress.template is not None
    assert progress.template_reasoning
    apply_events(think[2:], 20, progress, CHAT)  # plain reasoning chunks, not decoded
    assert progress.t_first_answer_ns is None
    answer = [chat_delta("content", f"a{i}") for i in range(3)]
    apply_events(answer[:1], 30, progress, CHAT)
    assert progress.t_first_answer_ns == 30
    assert progress.template is not None
    assert not progress.template_reasoning
    apply_events(answer[1:], 40, progress, CHAT)
    assert list(progress.chunk_times_ns) == [10, 10, 20, 20, 20, 30, 40, 40]
    assert (progress.t_first_ns, progress.t_last_ns) == (10, 40)
    assert tokens_out(progress) == (8, "estimate")
    assert reasoning_tokens(progress) == 5


def test_server_reasoning_count_wins_over_the_chunks_seen() -> None:
    progress = Progress(t_send_ns=0)
    apply_events([chat_delta("reasoning_content", "r")], 10, progress, CHAT)
    apply_events([chat_delta("content", "a")], 20, progress, CHAT)
    usage = (
        b'{"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":11,'
        b'"completion_tokens_details":{"reasoning_tokens":7}}}'
    )
    apply_events([usage, b"[DONE]"], 30, progress, CHAT)
    assert tokens_out(progress) == (11, "server")
    assert reasoning_tokens(progress) == 7


def test_no_reasoning_means_no_reasoning_count_and_answer_from_the_first_token() -> None:
    progress = Progress(t_send_ns=0)
    apply_events([chat_delta("content", "a"), chat_delta("content", "b")], 10, progress, CHAT)
    assert progress.t_first_answer_ns == progress.t_first_ns == 10
    assert reasoning_tokens(progress) is None


def test_kept_text_is_counted_by_kind_with_a_tokenizer() -> None:
    progress = Progress(t_send_ns=0, collect_text=True)
    reads = [chat_delta("reasoning", "one two "), chat_delta("reasoning", "three ")]
    apply_events(reads, 10, progress, CHAT)
    apply_events([chat_delta("content", "four five")], 20, progress, CHAT)
    assert progress.template is None  # every chunk decoded while text is kept

    def words(text: str) -> int:
        return len(text.split())

    assert tokens_out(progress, words) == (5, "tokenizer")
    assert reasoning_tokens(progress, words) == 3


RESPONSES = TEXT_MARKERS["responses"]


def response_event(kind: str, sequence: int, **fields: object) -> bytes:
    """A Responses API stream event's data payload."""
    return orjson.dumps({"type": kind, "sequence_number": sequence, **fields})


def test_responses_events_time_reasoning_and_answer_and_read_the_final_usage() -> None:
    progress = Progress(t_send_ns=0)
    created = response_event("response.created", 0, response={"status": "in_progress"})
    assert apply_events([created], 5, progress, RESPONSES) is False
    delta = "response.reasoning_text.delta"
    assert apply_events([response_event(delta, 1, delta="hm")], 10, progress, RESPONSES)
    apply_events([response_event(delta, 2, delta="m")], 15, progress, RESPONSES)
    text = "response.output_text.delta"
    apply_events(
        [response_event(text, 3, delta="Yes"), response_event(text, 4, delta=".")],
        20,
        progress,
        RESPONSES,
    )
    usage = {
        "input_tokens": 6,
        "output_tokens": 4,
        "output_tokens_details": {"reasoning_tokens": 2},
    }
    done = response_event("response.completed", 5, response={"status": "completed", "usage": usage})
    apply_events(
        [response_event("response.output_text.done", 5, text="Yes."), done], 25, progress, RESPONSES
    )
    assert progress.template is None  # sequence numbers differ: no event fits another's
    assert list(progress.chunk_times_ns) == [10, 15, 20, 20]
    assert (progress.t_first_ns, progress.t_first_answer_ns, progress.t_last_ns) == (10, 20, 20)
    assert tokens_out(progress) == (4, "server")
    assert (progress.prompt_tokens, reasoning_tokens(progress)) == (6, 2)


def test_responses_error_event_fails_the_request() -> None:
    progress = Progress(t_send_ns=0)
    failed = response_event("error", 3, code="server_error", message="engine died")
    with pytest.raises(RequestFailed, match="engine died"):
        apply_events([failed], 10, progress, RESPONSES)
