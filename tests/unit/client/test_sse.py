"""Tests for the incremental SSE parser: every expected payload is written out by hand."""

from __future__ import annotations

import pytest

from loadgen.client.sse import SSEParser

ROLE_ONLY = (
    b'{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},'
    b'"logprobs":null,"finish_reason":null}]}'
)
TOKEN = (
    b'{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"m","choices":[{"index":0,"delta":{"content":" the"},'
    b'"logprobs":null,"finish_reason":null}]}'
)

# A typical vLLM stream: LF only, one `data: ` line per event.
TYPICAL = b"data: " + ROLE_ONLY + b"\n\ndata: " + TOKEN + b'\n\ndata: {"a":1}\n\ndata: [DONE]\n\n'
TYPICAL_PAYLOADS = [ROLE_ONLY, TOKEN, b'{"a":1}', b"[DONE]"]

# Every awkward feature at once: BOM, comments, CRLF, lone CR, multi-line data, other fields.
MIXED = (
    b"\xef\xbb\xbf"
    b": keep-alive\n\n"
    b"data: one\r\n\r\n"
    b"event: ping\rid: 7\r\r"
    b"data:two\ndata: lines\n\n"
    b"retry: 10\n: note\ndata\r\n\r\n"
    b"data:  spaced\r\rdata: [DONE]\n\n"
)
MIXED_PAYLOADS = [b"one", b"two\nlines", b"", b" spaced", b"[DONE]"]


def feed_all(chunks: list[bytes]) -> list[bytes]:
    """Feed `chunks` to a fresh parser in order, then close it; all payloads seen."""
    parser = SSEParser()
    payloads: list[bytes] = []
    for chunk in chunks:
        payloads.extend(parser.feed(chunk))
    payloads.extend(parser.close())
    return payloads


def test_single_typical_event() -> None:
    parser = SSEParser()
    assert parser.feed(b'data: {"x":1}\n\n') == [b'{"x":1}']
    assert parser.close() == []


def test_many_events_in_one_feed() -> None:
    parser = SSEParser()
    assert parser.feed(TYPICAL) == TYPICAL_PAYLOADS
    assert parser.close() == []


def test_feed_returns_only_events_it_completes() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\n\ndata: b") == [b"a"]
    assert parser.feed(b"c\n") == []
    assert parser.feed(b"\ndata: d\n\n") == [b"bc", b"d"]


def test_mixed_stream_in_one_feed() -> None:
    assert feed_all([MIXED]) == MIXED_PAYLOADS


@pytest.mark.parametrize(
    ("stream", "expected"),
    [(TYPICAL, TYPICAL_PAYLOADS), (MIXED, MIXED_PAYLOADS)],
    ids=["typical", "mixed"],
)
def test_split_at_every_byte_boundary(stream: bytes, expected: list[bytes]) -> None:
    for cut in range(len(stream) + 1):
        assert feed_all([stream[:cut], stream[cut:]]) == expected, f"cut at {cut}"


def test_split_at_every_pair_of_boundaries() -> None:
    for first in range(len(MIXED) + 1):
        for second in range(first, len(MIXED) + 1):
            chunks = [MIXED[:first], MIXED[first:second], MIXED[second:]]
            assert feed_all(chunks) == MIXED_PAYLOADS, f"cuts at {first}, {second}"


@pytest.mark.parametrize(
    ("stream", "expected"),
    [(TYPICAL, TYPICAL_PAYLOADS), (MIXED, MIXED_PAYLOADS)],
    ids=["typical", "mixed"],
)
def test_one_byte_at_a_time(stream: bytes, expected: list[bytes]) -> None:
    assert feed_all([stream[i : i + 1] for i in range(len(stream))]) == expected


def test_comments_are_ignored() -> None:
    stream = b": hello\ndata: a\n: inside\ndata: b\n\n"
    assert feed_all([stream]) == [b"a\nb"]


def test_comment_only_keep_alive_events_produce_nothing() -> None:
    parser = SSEParser()
    assert parser.feed(b": keep-alive\n\n: ping\n\n:\n\n") == []
    assert parser.feed(b"data: x\n\n: keep-alive\n\n") == [b"x"]
    assert parser.close() == []


def test_crlf_line_endings() -> None:
    assert feed_all([b"data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n"]) == [b"a\nb", b"c"]


def test_lone_cr_line_endings() -> None:
    assert feed_all([b"data: a\rdata: b\r\rdata: c\r\r"]) == [b"a\nb", b"c"]


def test_crlf_split_across_feeds_is_one_line_break() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\ndata: b\r") == []
    assert parser.feed(b"\n\r") == [b"a\nb"]
    assert parser.feed(b"\ndata: c\n\n") == [b"c"]
    assert parser.close() == []


def test_crlf_split_with_lf_alone_in_its_feed() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\n") == []
    assert parser.feed(b"\n") == [b"a"]


def test_cr_at_end_of_feed_then_other_bytes() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"data: b\r") == []
    assert parser.feed(b"\r") == [b"a\nb"]


def test_empty_feed_keeps_pending_cr() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"") == []
    assert parser.feed(b"\ndata: b\n\n") == [b"a\nb"]


def test_multi_line_data_joined_with_lf() -> None:
    assert feed_all([b"data: first\ndata: second\ndata: third\n\n"]) == [b"first\nsecond\nthird"]


def test_data_without_space_after_colon() -> None:
    assert feed_all([b"data:x\n\n"]) == [b"x"]


def test_only_one_leading_space_is_stripped() -> None:
    assert feed_all([b"data:  x \n\n"]) == [b" x "]


def test_data_without_colon_is_empty_value() -> None:
    assert feed_all([b"data\n\n"]) == [b""]
    assert feed_all([b"data\ndata: x\n\n"]) == [b"\nx"]


def test_empty_data_value() -> None:
    assert feed_all([b"data:\n\ndata: \n\n"]) == [b"", b""]


def test_event_with_only_event_field_produces_nothing() -> None:
    parser = SSEParser()
    assert parser.feed(b"event: ping\n\n") == []
    assert parser.feed(b"id: 1\nretry: 1000\n\n") == []
    assert parser.close() == []


def test_other_fields_are_ignored() -> None:
    stream = b"event: delta\nid: 3\ndata: x\nretry: 5\ndatum: no\ndata-x: no\n\n"
    assert feed_all([stream]) == [b"x"]


def test_role_only_payload_passed_through_untouched() -> None:
    parser = SSEParser()
    payloads = parser.feed(b"data: " + ROLE_ONLY + b"\n\n")
    assert payloads == [
        b'{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,'
        b'"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},'
        b'"logprobs":null,"finish_reason":null}]}'
    ]


def test_done_sentinel_is_a_plain_payload() -> None:
    parser = SSEParser()
    assert parser.feed(b'data: {"a":1}\n\ndata: [DONE]\n\n') == [b'{"a":1}', b"[DONE]"]
    assert parser.close() == []


def test_close_returns_event_without_trailing_blank_line() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\n\ndata: b") == [b"a"]
    assert parser.close() == [b"b"]


def test_close_returns_event_ended_by_single_newline() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\ndata: b\n") == []
    assert parser.close() == [b"a\nb"]


def test_close_returns_event_ended_by_cr() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.close() == [b"a"]


def test_close_on_empty_buffer() -> None:
    assert SSEParser().close() == []
    parser = SSEParser()
    assert parser.feed(b"data: a\n\n") == [b"a"]
    assert parser.close() == []


def test_close_on_unterminated_comment_or_field() -> None:
    parser = SSEParser()
    assert parser.feed(b": keep-alive\nevent: x") == []
    assert parser.close() == []


def test_bom_at_start_is_skipped() -> None:
    assert feed_all([b"\xef\xbb\xbfdata: a\n\n"]) == [b"a"]


def test_bom_split_across_feeds() -> None:
    assert feed_all([b"\xef", b"\xbb", b"\xbfdata: a\n\n"]) == [b"a"]


def test_bom_only_skipped_once_and_only_at_start() -> None:
    # A second BOM makes the first line's field name "\ufeffdata", which is not `data`.
    assert feed_all([b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\ndata: b\n\n"]) == [b"b"]
    assert feed_all([b"data: a\n\n\xef\xbb\xbfdata: b\n\ndata: c\n\n"]) == [b"a", b"c"]


def test_partial_bom_prefix_is_not_a_bom() -> None:
    # b"\xef\xbb" then "data": not a BOM, so the line's field name is not `data`.
    assert feed_all([b"\xef\xbb", b"data: a\n\ndata: b\n\n"]) == [b"b"]


def test_leading_and_extra_blank_lines() -> None:
    assert feed_all([b"\n\ndata: a\n\n\n\n\ndata: b\n\n\n"]) == [b"a", b"b"]


def test_large_event_fed_in_small_reads() -> None:
    parser = SSEParser()
    stream = b"data: " + b"x" * 100_000 + b"\n\n"
    payloads: list[bytes] = []
    for start in range(0, len(stream), 1000):
        payloads.extend(parser.feed(stream[start : start + 1000]))
    assert payloads == [b"x" * 100_000]
    assert parser.close() == []


def test_at_boundary_only_between_whole_events() -> None:
    parser = SSEParser()
    assert not parser.at_boundary  # a BOM may still come
    parser.feed(b"data: a\n\n")
    assert parser.at_boundary
    parser.feed(b"data: b")
    assert not parser.at_boundary  # half an event pending
    parser.feed(b"\n\n")
    assert parser.at_boundary
    parser.feed(b"data: c\r")
    assert not parser.at_boundary
