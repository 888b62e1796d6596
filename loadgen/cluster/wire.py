"""What a cluster's processes say to each other: msgpack frames, and records packed as bytes.

A frame is a 4-byte big-endian length, then msgpack of `[kind, data, peer]`. Between the master
and its relay, `peer` is the worker a message goes to (None: every worker) or came from. A batch
of records travels as one bytes blob that the relays pass on without unpacking it.
"""

from __future__ import annotations

import asyncio
import struct
import sys
from array import array
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import msgpack

from loadgen.core.records import RequestRecord
from loadgen.core.shards import Shard, shard_index

HEADER = struct.Struct(">I")
# Chunk times travel as raw int64s: every supported host is little-endian.
_LITTLE_ENDIAN = sys.byteorder == "little"


class Message(NamedTuple):
    """One frame: what it is, what it carries, and the worker it is to or from."""

    kind: str
    data: Any = None
    peer: str | None = None


class WireError(Exception):
    """A frame that is not one of ours: the other end is not a loadgen of this version."""


def frame(kind: str, data: Any = None, peer: str | None = None) -> bytes:
    """`[kind, data, peer]` as one length-prefixed frame."""
    body: bytes = msgpack.packb([kind, data, peer], use_bin_type=True)
    return HEADER.pack(len(body)) + body


def parse(body: bytes) -> Message:
    """The message in a frame's body (WireError if it is none)."""
    try:
        value = msgpack.unpackb(body, raw=False, strict_map_key=False)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise WireError(f"not a loadgen message ({exc})") from None
    if not (isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)):
        raise WireError("not a loadgen message (not [kind, data, peer])")
    return Message(*value)


def read_frame(read: Callable[[int], bytes]) -> Message | None:
    """The next message from a blocking `read(n)` (that returns less only at the end); None at
    the end."""
    header = read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    body = read(size)
    if len(body) < size:
        return None
    return parse(body)


async def read_message(reader: asyncio.StreamReader) -> Message | None:
    """The next message from an asyncio stream; None at its end."""
    try:
        (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
        return parse(await reader.readexactly(size))
    except asyncio.IncompleteReadError:
        return None


def pack_records(records: Sequence[RequestRecord]) -> bytes:
    """Records as one msgpack blob; chunk times and token counts as raw int64 bytes."""
    if not _LITTLE_ENDIAN:
        raise WireError("loadgen clusters need little-endian hosts")
    rows = [
        (
            r.index,
            r.t_sched_ns,
            r.t_send_ns,
            r.slot_wait_ns,
            r.t_done_ns,
            r.t_first_ns,
            r.t_last_ns,
            r.tokens_in,
            r.tokens_out,
            r.tokens_source,
            _int64_bytes(r.chunk_times_ns),
            None if r.chunk_tokens is None else _int64_bytes(r.chunk_tokens),
            r.error_kind,
            r.error,
            r.status,
            r.t_first_answer_ns,
            r.reasoning_tokens,
            r.cached_tokens,
            r.session,
            r.turn,
        )
        for r in records
    ]
    packed: bytes = msgpack.packb(rows, use_bin_type=True)
    return packed


def unpack_records(blob: bytes, shard: Shard, shift_ns: int = 0) -> list[RequestRecord]:
    """The records `shard` packed, numbered among all shards' (`shard_index`), every time moved
    by `shift_ns` (into the master's clock)."""
    return [_record(row, shard, shift_ns) for row in msgpack.unpackb(blob, raw=False)]


def _record(row: Sequence[Any], shard: Shard, shift_ns: int) -> RequestRecord:
    (index, sched, send, slot_wait, done, first, last, tokens_in, tokens_out, source,
     times, tokens, error_kind, error, status, first_answer, reasoning, cached, session,
     turn) = row  # fmt: skip
    chunk_times = _int64_array(times, shift_ns)
    return RequestRecord(
        index=shard_index(index, shard),
        t_sched_ns=sched + shift_ns,
        t_send_ns=send + shift_ns,
        slot_wait_ns=slot_wait,
        t_done_ns=done + shift_ns,
        t_first_ns=None if first is None else first + shift_ns,
        t_last_ns=None if last is None else last + shift_ns,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        tokens_source=source,
        chunk_times_ns=chunk_times,
        chunk_tokens=None if tokens is None else _int64_array(tokens, 0),
        error_kind=error_kind,
        error=error,
        status=status,
        shard=shard.index,
        t_first_answer_ns=None if first_answer is None else first_answer + shift_ns,
        reasoning_tokens=reasoning,
        cached_tokens=cached,
        session=session,
        turn=turn,
    )


def _int64_bytes(values: Sequence[int]) -> bytes:
    return values.tobytes() if isinstance(values, array) else array("q", values).tobytes()


def _int64_array(data: bytes, shift: int) -> array[int]:
    values = array("q")
    values.frombytes(data)
    if shift:
        values = array("q", [value + shift for value in values])
    return values
