"""Tests for loadgen.cluster.wire: frames, messages from streams, and records packed as bytes."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import struct
from array import array
from collections.abc import Sequence
from typing import Any

import msgpack
import pytest

from loadgen.cluster.wire import (
    HEADER,
    Message,
    WireError,
    frame,
    pack_records,
    parse,
    read_frame,
    read_message,
    unpack_records,
)
from loadgen.core.records import RequestRecord
from loadgen.core.shards import Shard, shard_index

BASE = 3_000_000_000_000  # an arbitrary perf_counter_ns origin
TIME_FIELDS = (
    "t_sched_ns",
    "t_send_ns",
    "t_done_ns",
    "t_first_ns",
    "t_last_ns",
    "t_first_answer_ns",
)

# --- frames ----------------------------------------------------------------------------------

MESSAGES = [
    Message("hello"),
    Message("plan", {"rate": 12.5, "seeds": [1, 2, 3], "name": "S2S"}, "worker-1"),
    Message("records", b"\x00\x01\xff" * 100, None),
    Message("map", {1: "one", 2: [None, True, -7]}, "w"),
    Message("big", list(range(5000)), "worker-99"),
    Message("", "", ""),
]


def test_a_frame_is_its_length_then_its_body() -> None:
    data = frame("ping", {"a": 1}, "w")
    (size,) = struct.unpack(">I", data[:4])
    assert size == len(data) - 4 == len(data) - HEADER.size
    assert parse(data[4:]) == Message("ping", {"a": 1}, "w")


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.kind or "empty")
def test_frames_read_back_as_they_were_sent(message: Message) -> None:
    data = frame(message.kind, message.data, message.peer)
    assert parse(data[HEADER.size :]) == message
    assert read_frame(io.BytesIO(data).read) == message


def test_frames_carry_tuples_as_lists() -> None:
    data = frame("t", (1, (2, 3)))
    assert read_frame(io.BytesIO(data).read) == Message("t", [1, [2, 3]], None)


def test_read_frame_reads_frames_one_after_another_then_none() -> None:
    stream = io.BytesIO(b"".join(frame(m.kind, m.data, m.peer) for m in MESSAGES))
    assert [read_frame(stream.read) for _ in MESSAGES] == MESSAGES
    assert read_frame(stream.read) is None
    assert read_frame(stream.read) is None


def test_read_frame_at_the_end_is_none() -> None:
    assert read_frame(io.BytesIO(b"").read) is None


@pytest.mark.parametrize("keep", [1, 3, 4, 5, -1])
def test_read_frame_on_a_truncated_frame_is_none(keep: int) -> None:
    data = frame("plan", {"rate": 1.0, "pad": "x" * 50}, "w")
    assert read_frame(io.BytesIO(data[:keep]).read) is None


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xc1",  # a byte msgpack never uses
        b"\x93\xa1",  # a list of three cut short
        msgpack.packb(5),
        msgpack.packb(["kind"]),
        msgpack.packb(["kind", 1]),
        msgpack.packb(["kind", 1, None, 2]),
        msgpack.packb([1, 2, 3]),
        msgpack.packb([None, 2, 3]),
        msgpack.packb(b"abc"),
        msgpack.packb(["kind", 1, None]) + b"tail",
    ],
)
def test_parse_of_what_is_not_a_message_raises_wire_error(body: bytes) -> None:
    with pytest.raises(WireError, match="not a loadgen message"):
        parse(body)


def test_read_frame_of_a_garbage_body_raises_wire_error() -> None:
    body = b"\xc1\xc1"
    with pytest.raises(WireError):
        read_frame(io.BytesIO(HEADER.pack(len(body)) + body).read)


# --- read_message ----------------------------------------------------------------------------


async def test_read_message_reads_fed_frames_then_none_at_eof() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"".join(frame(m.kind, m.data, m.peer) for m in MESSAGES))
    reader.feed_eof()
    assert [await read_message(reader) for _ in MESSAGES] == MESSAGES
    assert await read_message(reader) is None


async def test_read_message_waits_for_a_frame_fed_in_pieces() -> None:
    reader = asyncio.StreamReader()
    data = frame("plan", {"rate": 3.0}, "w-2")
    pending = asyncio.ensure_future(read_message(reader))
    for k in range(0, len(data), 3):
        reader.feed_data(data[k : k + 3])
        await asyncio.sleep(0)
    assert await asyncio.wait_for(pending, 5) == Message("plan", {"rate": 3.0}, "w-2")


@pytest.mark.parametrize("keep", [0, 2, 4, 7])
async def test_read_message_on_a_truncated_frame_is_none(keep: int) -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(frame("plan", {"rate": 3.0}, "w")[:keep])
    reader.feed_eof()
    assert await read_message(reader) is None


async def test_read_message_of_garbage_raises_wire_error() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(HEADER.pack(1) + b"\xc1")
    reader.feed_eof()
    with pytest.raises(WireError):
        await read_message(reader)


# --- records ---------------------------------------------------------------------------------


def records() -> list[RequestRecord]:
    """Records of one shard (local numbers) with every kind of field, None ones included."""
    return [
        RequestRecord(
            index=0,
            t_sched_ns=BASE,
            t_send_ns=BASE + 1_000,
            slot_wait_ns=500,
            t_done_ns=BASE + 90_000,
            t_first_ns=BASE + 20_000,
            t_last_ns=BASE + 80_000,
            tokens_in=12,
            tokens_out=3,
            tokens_source="server",
            chunk_times_ns=array("q", [BASE + 20_000, BASE + 50_000, BASE + 80_000]),
            chunk_tokens=array("q", [1, 1, 1]),
            status=200,
            t_first_answer_ns=BASE + 50_000,  # two tokens of reasoning before the answer
            reasoning_tokens=2,
            cached_tokens=8,
            session=3,
            turn=2,
        ),
        RequestRecord(  # chunk times as a plain tuple, chunk tokens unknown
            index=1,
            t_sched_ns=BASE + 10_000,
            t_send_ns=BASE + 10_000,
            slot_wait_ns=0,
            t_done_ns=BASE + 70_000,
            t_first_ns=BASE + 30_000,
            t_last_ns=BASE + 60_000,
            tokens_out=4,
            tokens_source="tokenizer",
            chunk_times_ns=(BASE + 30_000, BASE + 60_000),
            chunk_tokens=None,
            status=200,
        ),
        RequestRecord(  # an error: no stream, None times and status
            index=2,
            t_sched_ns=BASE + 20_000,
            t_send_ns=BASE + 25_000,
            slot_wait_ns=4_000,
            t_done_ns=BASE + 26_000,
            error_kind="connect",
            error="connection refused: 127.0.0.1:1",
        ),
        RequestRecord(  # an HTTP error with a status, non-streamed success fields unset
            index=3,
            t_sched_ns=BASE + 30_000,
            t_send_ns=BASE + 31_000,
            slot_wait_ns=0,
            t_done_ns=BASE + 40_000,
            tokens_in=0,
            chunk_times_ns=array("q"),
            chunk_tokens=array("q"),
            error_kind="http_5xx",
            error="Internal Server Error",
            status=503,
        ),
        RequestRecord(  # chunk tokens larger than one, as a list
            index=4,
            t_sched_ns=BASE + 40_000,
            t_send_ns=BASE + 40_000,
            slot_wait_ns=0,
            t_done_ns=BASE + 99_000,
            t_first_ns=BASE + 45_000,
            t_last_ns=BASE + 95_000,
            tokens_out=9,
            tokens_source="estimate",
            chunk_times_ns=[BASE + 45_000, BASE + 95_000],
            chunk_tokens=[2**40, 7],
        ),
    ]


def fields(record: RequestRecord) -> dict[str, Any]:
    """A record's fields with its sequences as lists (arrays, tuples and lists compare)."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(RequestRecord):
        name = field.name
        value = getattr(record, name)
        if isinstance(value, (array, tuple, list)):
            value = list(value)
        out[name] = value
    return out


def test_records_round_trip() -> None:
    sent = records()
    back = unpack_records(pack_records(sent), Shard(0, 1))
    assert len(back) == len(sent)
    for got, want in zip(back, sent, strict=True):
        assert fields(got) == {**fields(want), "shard": 0}
        assert isinstance(got.chunk_times_ns, array)
        assert got.chunk_times_ns.typecode == "q"
        if want.chunk_tokens is None:
            assert got.chunk_tokens is None
        else:
            assert isinstance(got.chunk_tokens, array)


def test_no_records_round_trip() -> None:
    assert unpack_records(pack_records([]), Shard(1, 2), 5) == []


def test_packed_records_are_one_bytes_blob() -> None:
    blob = pack_records(records())
    assert isinstance(blob, bytes)
    # ...that travels inside a frame unchanged.
    message = read_frame(io.BytesIO(frame("records", blob, "w-1")).read)
    assert message is not None
    assert message.data == blob


@pytest.mark.parametrize("shift_ns", [0, 123_456_789, -987_654])
@pytest.mark.parametrize(("index", "count"), [(0, 1), (0, 3), (2, 3), (5, 8)])
def test_unpacked_records_are_numbered_and_shifted_into_the_masters_clock(
    shift_ns: int, index: int, count: int
) -> None:
    sent = records()
    shard = Shard(index, count)
    back = unpack_records(pack_records(sent), shard, shift_ns)
    for local, (got, want) in enumerate(zip(back, sent, strict=True)):
        assert got.index == shard_index(local, shard) == local * count + index
        assert got.shard == index
        for name in TIME_FIELDS:
            before = getattr(want, name)
            assert getattr(got, name) == (None if before is None else before + shift_ns)
        assert list(got.chunk_times_ns) == [t + shift_ns for t in want.chunk_times_ns]
        # A wait is a duration, not a clock reading; token counts are not times.
        assert got.slot_wait_ns == want.slot_wait_ns
        assert _list_or_none(got.chunk_tokens) == _list_or_none(want.chunk_tokens)
        rest = {f.name for f in dataclasses.fields(RequestRecord)} - {
            *TIME_FIELDS,
            "index",
            "shard",
            "chunk_times_ns",
            "chunk_tokens",
            "slot_wait_ns",
        }
        assert {k: fields(got)[k] for k in rest} == {k: fields(want)[k] for k in rest}


def _list_or_none(values: Sequence[int] | None) -> list[int] | None:
    return None if values is None else list(values)


@pytest.mark.parametrize("value", ["abc", {"a": 1, "b": 2, "c": 3}, ("k", None)])
def test_parse_refuses_what_is_not_kind_data_peer(value: object) -> None:
    with pytest.raises(WireError):
        parse(msgpack.packb(value))
