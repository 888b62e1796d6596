"""The Responses API (`POST /v1/responses`) in vLLM's shapes: response objects and SSE events.

A stream is `event: TYPE` / `data: JSON` pairs, numbered by `sequence_number`, in the order
vLLM's simple (non-Harmony) path sends them: `response.created`, `response.in_progress`; a
reasoning item (`output_item.added`, `content_part.added`, one `reasoning_text.delta` per
token, then its `.done` events) when the model reasons; the message item likewise with
`output_text.delta`; and `response.completed`, whose response holds the output and usage. As
vLLM, an answer cut at `max_output_tokens` is still `response.completed`, with status
"incomplete" and `incomplete_details.reason` "max_output_tokens". There is no `[DONE]`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from loadgen.sim.tokens import output_text, token_text

_MARKER = "@@token@@"


@dataclass(frozen=True, slots=True)
class ResponseFacts:
    """What a response object repeats of its request: model, limits and sampling (tokens)."""

    model: str
    max_output_tokens: int
    temperature: float | None = None
    instructions: str | None = None


@dataclass(frozen=True, slots=True)
class ResponseOutcome:
    """How a response ended: its tokens in and out, cached and reasoning ones, finish reason.

    `reasoning` is the reasoning phase's length (None: the model does not reason); at most
    `output_tokens` of them were generated.
    """

    input_tokens: int
    output_tokens: int
    cached_tokens: int
    reasoning: int | None
    finish_reason: str

    @property
    def reasoning_tokens(self) -> int:
        """Output tokens that were reasoning."""
        return min(self.reasoning or 0, self.output_tokens)

    @property
    def status(self) -> str:
        """The response's status: "incomplete" when cut at max_output_tokens, else "completed"."""
        return "incomplete" if self.finish_reason == "length" else "completed"

    def usage(self) -> dict[str, Any]:
        """The Responses API usage object."""
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_tokens},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.input_tokens + self.output_tokens,
        }


def response_object(
    facts: ResponseFacts,
    response_id: str,
    created_at: int,
    *,
    output: list[dict[str, Any]],
    outcome: ResponseOutcome | None,
) -> dict[str, Any]:
    """A response object; without an `outcome` it is still in progress (no usage yet)."""
    status = "in_progress" if outcome is None else outcome.status
    incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": None,
        "incomplete_details": incomplete,
        "instructions": facts.instructions,
        "max_output_tokens": facts.max_output_tokens,
        "model": facts.model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": None,
        "temperature": 1.0 if facts.temperature is None else facts.temperature,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": None if outcome is None else outcome.usage(),
        "user": None,
        "metadata": None,
    }


def reasoning_item(item_id: str, text: str | None) -> dict[str, Any]:
    """A reasoning output item: in progress without `text`, else completed with it."""
    content = None if text is None else [{"type": "reasoning_text", "text": text}]
    status = "in_progress" if text is None else "completed"
    return {"id": item_id, "type": "reasoning", "summary": [], "content": content, "status": status}


def message_item(item_id: str, text: str | None) -> dict[str, Any]:
    """An assistant message output item: in progress without `text`, else completed with it."""
    content = [] if text is None else [_output_text(text)]
    status = "in_progress" if text is None else "completed"
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "content": content,
        "status": status,
    }


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def output_items(rid: int, outcome: ResponseOutcome) -> list[dict[str, Any]]:
    """The completed output items of request `rid`: its reasoning, then its answer, if any."""
    split = outcome.reasoning_tokens
    items = []
    if split:
        items.append(reasoning_item(f"rs_{uuid.uuid4().hex}", output_text(rid, 0, split)))
    if split < outcome.output_tokens:
        items.append(
            message_item(f"msg_{uuid.uuid4().hex}", output_text(rid, split, outcome.output_tokens))
        )
    return items


def whole_response(facts: ResponseFacts, rid: int, outcome: ResponseOutcome) -> dict[str, Any]:
    """A non-streamed response of request `rid`."""
    return response_object(
        facts,
        f"resp_{uuid.uuid4().hex}",
        int(time.time()),
        output=output_items(rid, outcome),
        outcome=outcome,
    )


class ResponsesEncoder:
    """The SSE events of one streamed response, numbered in order; token events pre-encoded."""

    def __init__(self, facts: ResponseFacts) -> None:
        self.facts = facts
        self.id = f"resp_{uuid.uuid4().hex}"
        self._created_at = int(time.time())
        self._sequence = 0
        self._items: list[dict[str, Any]] = []  # completed output items
        # The open item: its content kind (None: no item open), id and first output token.
        self._kind: str | None = None
        self._item_id = ""
        self._first = 0
        self._templates = {kind: self._template(kind) for kind in ("reasoning_text", "output_text")}
        self._delta = self._templates["output_text"]  # the open item's delta template

    def opening(self) -> bytes:
        """`response.created` and `response.in_progress`."""
        response = response_object(self.facts, self.id, self._created_at, output=[], outcome=None)
        return self._event("response.created", response=response) + self._event(
            "response.in_progress", response=response
        )

    def tokens(
        self,
        rid: int,
        start: int,
        stop: int,
        finish_reason: str | None = None,
        reasoning: int | None = None,
    ) -> bytes:
        """Events for output tokens `start .. stop - 1` of request `rid`, one delta each.

        Tokens before `reasoning` are reasoning; items open and close where the kind changes.
        """
        body = b""
        position = start
        while position < stop:
            kind = "reasoning_text" if position < (reasoning or 0) else "output_text"
            end = min(reasoning or 0, stop) if kind == "reasoning_text" else stop
            if self._kind != kind:
                body += self._close(rid, position) + self._start(kind, position)
            body += self._deltas(rid, position, end)
            position = end
        return body

    def closing(self, rid: int, outcome: ResponseOutcome) -> bytes:
        """The open item's `.done` events and `response.completed`."""
        body = self._close(rid, outcome.output_tokens)
        response = response_object(
            self.facts, self.id, self._created_at, output=self._items, outcome=outcome
        )
        return body + self._event("response.completed", response=response)

    def _start(self, kind: str, position: int) -> bytes:
        """Open a reasoning item or the message item at output token `position`."""
        reasoning = kind == "reasoning_text"
        item_id = f"{'rs' if reasoning else 'msg'}_{uuid.uuid4().hex}"
        self._kind, self._item_id, self._first = kind, item_id, position
        index = len(self._items)
        head, middle, tail = self._templates[kind]
        head = head.replace(b"@@item@@", item_id.encode()).replace(b"@@index@@", b"%d" % index)
        self._delta = head, middle, tail
        item = reasoning_item(item_id, None) if reasoning else message_item(item_id, None)
        part = {"type": kind, "text": ""} if reasoning else _output_text("")
        return self._event("response.output_item.added", output_index=index, item=item) + (
            self._event(
                "response.content_part.added",
                item_id=item_id,
                output_index=index,
                content_index=0,
                part=part,
            )
        )

    def _close(self, rid: int, stop: int) -> bytes:
        """The `.done` events of the open item, whose tokens end before `stop`."""
        kind, item_id = self._kind, self._item_id
        if kind is None:
            return b""
        self._kind = None
        text = output_text(rid, self._first, stop)
        index = len(self._items)
        reasoning = kind == "reasoning_text"
        item = reasoning_item(item_id, text) if reasoning else message_item(item_id, text)
        self._items.append(item)
        place = {"item_id": item_id, "output_index": index, "content_index": 0}
        done = {"text": text} if reasoning else {"text": text, "logprobs": []}
        part = item["content"][0]
        return (
            self._event(f"response.{kind}.done", **place, **done)
            + self._event("response.content_part.done", **place, part=part)
            + self._event("response.output_item.done", output_index=index, item=item)
        )

    def _deltas(self, rid: int, start: int, stop: int) -> bytes:
        """One delta event per token of the open item, from its pre-encoded template."""
        head, middle, tail = self._delta
        parts = []
        for position in range(start, stop):
            parts.append(
                head + token_text(rid, position).encode() + middle + b"%d" % self._sequence + tail
            )
            self._sequence += 1
        return b"".join(parts)

    def _template(self, kind: str) -> tuple[bytes, bytes, bytes]:
        """A delta event cut around its item id, output index, delta and sequence number."""
        fields: dict[str, Any] = {
            "type": f"response.{kind}.delta",
            "item_id": "@@item@@",
            "output_index": "@@index@@",
            "content_index": 0,
            "delta": _MARKER,
        }
        if kind == "output_text":
            fields["logprobs"] = []
        fields["sequence_number"] = "@@seq@@"
        data = orjson.dumps(fields).replace(b'"@@index@@"', b"@@index@@")
        event = b"event: response.%b.delta\ndata: %b\n\n" % (kind.encode(), data)
        head, rest = event.split(_MARKER.encode())
        middle, tail = rest.split(b'"@@seq@@"')
        return head, middle, tail

    def _event(self, kind: str, **fields: Any) -> bytes:
        """One event, numbered next."""
        data = orjson.dumps({"type": kind, **fields, "sequence_number": self._sequence})
        self._sequence += 1
        return b"event: %b\ndata: %b\n\n" % (kind.encode(), data)
