"""Tests for loadgen.sim.responses_api: Responses API events and objects in vLLM's shapes.

Every check parses the bytes back as a client would: `event: TYPE` and `data: JSON` lines, a
blank line after each event, and the event's `type` field equal to its `event:` line.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest

from loadgen.sim.responses_api import (
    ResponseFacts,
    ResponseOutcome,
    ResponsesEncoder,
    whole_response,
)
from loadgen.sim.tokens import token_text

FACTS = ResponseFacts("some/model", max_output_tokens=8, temperature=0.5)


def events(raw: bytes) -> list[dict[str, Any]]:
    """Parse SSE bytes: each event exactly `event: TYPE\\ndata: JSON\\n\\n`."""
    assert raw.endswith(b"\n\n")
    parsed = []
    for block in raw.split(b"\n\n")[:-1]:
        event_line, data_line = block.split(b"\n")
        assert event_line.startswith(b"event: "), block
        assert data_line.startswith(b"data: "), block
        data = orjson.loads(data_line.removeprefix(b"data: "))
        assert data["type"] == event_line.removeprefix(b"event: ").decode()
        parsed.append(data)
    return parsed


def outcome(output: int, reasoning: int | None, reason: str = "stop") -> ResponseOutcome:
    return ResponseOutcome(
        input_tokens=20, output_tokens=output, cached_tokens=16, reasoning=reasoning,
        finish_reason=reason,
    )  # fmt: skip


def stream(output: int, reasoning: int | None, cuts: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    """A whole stream of request 3, its tokens written in pieces cut at `cuts`."""
    enc = ResponsesEncoder(FACTS)
    raw = enc.opening()
    edges = [0, *cuts, output]
    for start, stop in itertools.pairwise(edges):
        raw += enc.tokens(3, start, stop, None, reasoning)
    return events(raw + enc.closing(3, outcome(output, reasoning)))


def text(start: int, stop: int) -> str:
    return "".join(token_text(3, p) for p in range(start, stop))


REASONING_THEN_ANSWER = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    *["response.reasoning_text.delta"] * 3,
    "response.reasoning_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.output_item.added",
    "response.content_part.added",
    *["response.output_text.delta"] * 5,
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


@pytest.mark.parametrize("cuts", [(), (1,), (3,), (2, 4, 7)])
def test_reasoning_then_answer_events_in_vllms_order(cuts: tuple[int, ...]) -> None:
    parsed = stream(8, 3, cuts)
    assert [event["type"] for event in parsed] == REASONING_THEN_ANSWER
    assert [event["sequence_number"] for event in parsed] == list(range(len(parsed)))


def test_deltas_add_up_to_the_done_texts_and_the_output_items() -> None:
    parsed = stream(8, 3, (2, 5))
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in parsed:
        by_type.setdefault(event["type"], []).append(event)
    reasoning = [e["delta"] for e in by_type["response.reasoning_text.delta"]]
    answer = [e["delta"] for e in by_type["response.output_text.delta"]]
    assert reasoning == [token_text(3, p) for p in range(3)]
    assert answer == [token_text(3, p) for p in range(3, 8)]
    assert by_type["response.reasoning_text.done"][0]["text"] == text(0, 3)
    assert by_type["response.output_text.done"][0]["text"] == text(3, 8)

    rs_added, msg_added = by_type["response.output_item.added"]
    rs_done, msg_done = by_type["response.output_item.done"]
    assert (rs_added["output_index"], msg_added["output_index"]) == (0, 1)
    assert rs_added["item"]["id"].startswith("rs_")
    assert msg_added["item"]["id"].startswith("msg_")
    assert rs_done["item"] == {
        "id": rs_added["item"]["id"],
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text(0, 3)}],
        "status": "completed",
    }
    assert msg_done["item"]["content"] == [
        {"type": "output_text", "text": text(3, 8), "annotations": [], "logprobs": []}
    ]
    for event in by_type["response.output_text.delta"]:
        assert event["item_id"] == msg_added["item"]["id"]
        assert (event["output_index"], event["content_index"], event["logprobs"]) == (1, 0, [])
    for event in by_type["response.reasoning_text.delta"]:
        assert (event["item_id"], event["output_index"]) == (rs_added["item"]["id"], 0)

    completed = by_type["response.completed"][0]["response"]
    assert completed["output"] == [rs_done["item"], msg_done["item"]]
    assert completed["status"] == "completed"
    assert completed["incomplete_details"] is None
    assert completed["usage"] == {
        "input_tokens": 20,
        "input_tokens_details": {"cached_tokens": 16},
        "output_tokens": 8,
        "output_tokens_details": {"reasoning_tokens": 3},
        "total_tokens": 28,
    }


def test_created_and_in_progress_hold_the_response_so_far() -> None:
    created, in_progress = stream(2, None)[:2]
    for event in (created, in_progress):
        response = event["response"]
        assert response["object"] == "response"
        assert response["id"].startswith("resp_")
        assert (response["status"], response["output"], response["usage"]) == (
            "in_progress",
            [],
            None,
        )
        assert (response["model"], response["max_output_tokens"]) == ("some/model", 8)
        assert response["temperature"] == 0.5


@pytest.mark.parametrize("reasoning", [None, 0])
def test_without_reasoning_the_message_is_output_zero(reasoning: int | None) -> None:
    parsed = stream(4, reasoning)
    types = [event["type"] for event in parsed]
    assert "response.reasoning_text.delta" not in types
    assert types.count("response.output_text.delta") == 4
    added = next(e for e in parsed if e["type"] == "response.output_item.added")
    assert added["output_index"] == 0
    assert parsed[-1]["response"]["usage"]["output_tokens_details"] == {"reasoning_tokens": 0}


def test_an_output_that_ends_while_reasoning_has_no_message() -> None:
    parsed = stream(4, 10)
    types = [event["type"] for event in parsed]
    assert "response.output_text.delta" not in types
    assert types.count("response.reasoning_text.delta") == 4
    final = parsed[-1]["response"]
    assert [item["type"] for item in final["output"]] == ["reasoning"]
    assert final["usage"]["output_tokens_details"] == {"reasoning_tokens": 4}


def test_an_answer_cut_at_max_output_tokens_is_incomplete() -> None:
    enc = ResponsesEncoder(FACTS)
    raw = enc.opening() + enc.tokens(3, 0, 8) + enc.closing(3, outcome(8, None, "length"))
    final = events(raw)[-1]
    assert final["type"] == "response.completed"  # as vLLM sends it
    assert final["response"]["status"] == "incomplete"
    assert final["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_the_stream_keeps_one_response_id() -> None:
    parsed = stream(3, 1)
    ids = {event["response"]["id"] for event in parsed if "response" in event}
    assert len(ids) == 1


@pytest.mark.parametrize(
    ("reasoning", "kinds"), [(None, ["message"]), (2, ["reasoning", "message"])]
)
def test_whole_response_output_items(reasoning: int | None, kinds: list[str]) -> None:
    body = orjson.loads(orjson.dumps(whole_response(FACTS, 3, outcome(5, reasoning))))
    assert body["object"] == "response"
    assert body["status"] == "completed"
    assert [item["type"] for item in body["output"]] == kinds
    message = body["output"][-1]
    assert message["role"] == "assistant"
    assert message["content"] == [
        {"type": "output_text", "text": text(reasoning or 0, 5), "annotations": [], "logprobs": []}
    ]
    if reasoning:
        assert body["output"][0]["content"] == [{"type": "reasoning_text", "text": text(0, 2)}]
    assert body["usage"]["output_tokens"] == 5
    assert body["usage"]["input_tokens_details"] == {"cached_tokens": 16}
