"""Incremental Server-Sent-Events parser on bytes (WHATWG SSE), pure: no I/O, stdlib only."""

from __future__ import annotations

_BOM = b"\xef\xbb\xbf"
_DATA_PREFIX = b"data: "
# Between two single-line `data: ` events; it holds exactly two newlines, which the fast path
# relies on to prove that no event in a run has a second line.
_EVENT_SEPARATOR = b"\n\ndata: "


class SSEParser:
    """Incremental SSE parser: feed bytes as they arrive, get complete events' data payloads."""

    __slots__ = ("_after_cr", "_at_start", "_bom_head", "_tail")

    def __init__(self) -> None:
        """Start at the beginning of a stream, before any optional UTF-8 BOM."""
        self._at_start = True
        self._bom_head = b""
        self._after_cr = False
        # Chunks (LF-only) of the event in progress; their concatenation holds no b"\n\n".
        # A list, not one growing bytes, so a huge event fed in small reads stays linear.
        self._tail: list[bytes] = []

    def feed(self, data: bytes) -> list[bytes]:
        """Payloads, in order, of every event that these bytes complete."""
        if self._at_start:
            data = self._skip_bom(data)
        if self._after_cr or b"\r" in data:
            data = self._normalise_cr(data)
        if not data:
            return []
        cut = self._last_boundary(data)
        if cut == 0:
            self._tail.append(data)
            return []
        block = data[:cut]
        if self._tail:
            self._tail.append(block)
            block = b"".join(self._tail)
        rest = data[cut:]
        self._tail = [rest] if rest else []
        return _block_payloads(block)

    @property
    def at_boundary(self) -> bool:
        """True between events: no partial event, line end or BOM is pending."""
        return not (self._tail or self._after_cr or self._at_start)

    def close(self) -> list[bytes]:
        """Payload of a final event the stream ended without a blank line after, else []."""
        rest = b"".join(self._tail)
        self._tail = []
        return _parse_lines(rest)

    def _skip_bom(self, data: bytes) -> bytes:
        """Drop a UTF-8 BOM at the very start, even one split across feeds."""
        head = self._bom_head + data
        if len(head) < len(_BOM) and _BOM.startswith(head):
            self._bom_head = head
            return b""
        self._at_start = False
        self._bom_head = b""
        return head[len(_BOM) :] if head.startswith(_BOM) else head

    def _normalise_cr(self, data: bytes) -> bytes:
        """Turn CRLF and lone CR into LF, pairing a CR that ended the last feed with its LF."""
        if not data:
            # An empty feed must not forget a CR still waiting for its LF.
            return data
        if self._after_cr and data[:1] == b"\n":
            data = data[1:]
        self._after_cr = data[-1:] == b"\r"
        return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")

    def _last_boundary(self, data: bytes) -> int:
        """Index in `data` just past the last blank line, 0 when it ends no event."""
        end = data.rfind(b"\n\n")
        if end >= 0:
            return end + 2
        if data[:1] == b"\n" and self._tail and self._tail[-1][-1:] == b"\n":
            return 1
        return 0


def _block_payloads(block: bytes) -> list[bytes]:
    """Payloads of a run of complete LF-only events (the run ends with a blank line)."""
    if block.startswith(_DATA_PREFIX):
        body = block[len(_DATA_PREFIX) : -2]
        payloads = body.split(_EVENT_SEPARATOR)
        # Every newline sits in a separator only when each event is one `data: ` line.
        if body.count(b"\n") == 2 * (len(payloads) - 1):
            return payloads
    return _parse_lines(block)


def _parse_lines(text: bytes) -> list[bytes]:
    """Payloads of LF-separated lines; a blank line or the end of `text` ends an event."""
    payloads: list[bytes] = []
    data: list[bytes] = []
    for line in text.split(b"\n"):
        if not line:
            if data:
                payloads.append(b"\n".join(data))
                data = []
        elif line.startswith(b"data"):
            value = _data_value(line)
            if value is not None:
                data.append(value)
    if data:
        payloads.append(b"\n".join(data))
    return payloads


def _data_value(line: bytes) -> bytes | None:
    """Value of a `data` field line (one leading space dropped), None for any other field."""
    name, _, value = line.partition(b":")
    if name != b"data":
        return None
    return value[1:] if value[:1] == b" " else value
