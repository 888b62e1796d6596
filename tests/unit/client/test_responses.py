"""Tests for loadgen.client.responses: how the events of each read become token chunk times."""

from __future__ import annotations

import pytest

from loadgen.client.protocol import TEXT_MARKERS
from loadgen.client.responses import Progress, RequestFailed, apply_events, tokens_out

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
