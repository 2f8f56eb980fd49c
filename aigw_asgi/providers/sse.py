"""Incremental Server-Sent Events and NDJSON parsing, sans-IO.

The gateway forwards streams while reading usage out of them, so it needs what generic SSE clients
throw away: each event's exact bytes (``raw``) next to its parsed fields, however the network split
them. Parsing runs once per upstream chunk on the streaming hot path, so it never loops over bytes
in Python: events are cut at the blank line with ``bytes.find``, and only whole events are split
into lines.

Deliberate departures from the WHATWG dispatch rules, because forwarding needs every byte:

* blocks with no ``data:`` line (comments, keep-alives) are returned too, with ``data == b""``;
  a spec consumer skips them. Concatenating every ``raw`` reproduces the input exactly.
* `SSEParser.flush` returns a trailing event that lacks its blank line (the spec drops it), because
  upstreams that close without the final blank line still mean their last event.
"""

from __future__ import annotations

from dataclasses import dataclass

_BOM = b"\xef\xbb\xbf"
_COLON = 0x3A
_LF = 0x0A
_CR = 0x0D


@dataclass(slots=True)
class SSEEvent:
    """One event: the fields a usage reader needs, plus the exact bytes to forward."""

    event: str | None  # the ``event:`` field, None when absent (the spec's default, "message")
    data: bytes  # ``data:`` lines joined with b"\n"; b"" for comment-only blocks
    raw: bytes  # the bytes as received, terminating blank line included


def _parse_block(block: bytes) -> SSEEvent:
    """Read the fields of one complete event (``block`` is its raw bytes)."""
    event: str | None = None
    data: list[bytes] = []
    for line in block.splitlines():
        if not line or line[0] == _COLON:
            continue
        colon = line.find(b":")
        if colon < 0:
            name, value = line, b""
        else:
            name, value = line[:colon], line[colon + 1 :]
            if value[:1] == b" ":
                value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace") or None
        # id: and retry: only matter to the client, which gets them through ``raw``.
    return SSEEvent(event, data[0] if len(data) == 1 else b"\n".join(data), block)


class SSEParser:
    """Incremental: feed arbitrary byte chunks (split anywhere, even inside b"\\r\\n"), get whole events."""

    __slots__ = ("_buf", "_scan", "_cr", "_started")

    def __init__(self) -> None:
        self._buf = bytearray()  # bytearray: a big event arriving in many small chunks stays linear
        self._scan = 0  # where the next boundary search starts in _buf (the rest was searched already)
        self._cr = False  # a "\r" was seen: from then on all three line terminators are possible
        self._started = False

    @property
    def pending(self) -> bytes:
        """Bytes received that are not part of a complete event yet."""
        return bytes(self._buf)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not chunk:
            return []
        if not self._cr:
            if b"\r" in chunk:
                self._cr = True
            elif (
                not self._buf
                and chunk.endswith(b"\n\n")
                and chunk.startswith(b"data:")
                and chunk.find(b"\n") == len(chunk) - 2
                and self._started
            ):
                # The commonest chunk of all: exactly one event with one data line.
                return [SSEEvent(None, chunk[6:-2] if chunk[5] == 0x20 else chunk[5:-2], chunk)]
        if self._buf:
            self._buf += chunk
            return self._split(self._buf, final=False)
        return self._split(chunk, final=False)

    def flush(self) -> list[SSEEvent]:
        """The events left when the stream ends, including a last one that lacks its blank line."""
        if not self._buf:
            return []
        events = self._split(self._buf, final=True)
        if self._buf:
            events.append(self._event(bytes(self._buf)))
            self._buf = bytearray()
        self._scan = 0
        return events

    def _split(self, buf: bytes | bytearray, *, final: bool) -> list[SSEEvent]:
        # ``buf`` is the caller's chunk (no copy) or ``self._buf`` (a bytearray, sliced into bytes).
        #
        # An event ends where a line terminator is directly followed by another one (the blank
        # line). With "\n", "\r\n" and "\r" all allowed, such a pair always starts "\n\n", "\n\r"
        # or "\r\r" ("\r\n" alone is one terminator); the byte after it says whether the blank
        # line's own terminator is "\r\n", one byte longer.
        events: list[SSEEvent] = []
        append = events.append
        find = buf.find
        n = len(buf)
        pos, scan = 0, self._scan
        copy = buf is self._buf  # slices of the bytearray must become bytes
        deferred = -1
        if not self._cr:
            # Walk the "\n"s (single-byte finds are memchr-fast; a few per event).
            i = find(b"\n", scan)
            while 0 <= i < n - 1:
                if buf[i + 1] != _LF:
                    i = find(b"\n", i + 1)
                    continue
                end = i + 2
                block = bytes(buf[pos:end])  # free for bytes (the same object), a copy for the bytearray
                first = find(b"\n", pos) - pos
                # The common shapes skip the general line splitting: one data line (OpenAI), or an
                # event line and one data line (Anthropic, Responses API).
                if first == end - pos - 2 and block.startswith(b"data:") and self._started:
                    append(SSEEvent(None, block[6:-2] if block[5] == 0x20 else block[5:-2], block))
                elif (
                    block.startswith(b"event:")
                    and block.startswith(b"data:", first + 1)
                    and find(b"\n", pos + first + 1) == i
                    and self._started
                ):
                    name = block[7:first] if block[6] == 0x20 else block[6:first]
                    start = first + 7 if block[first + 6] == 0x20 else first + 6
                    append(SSEEvent(name.decode("utf-8", "replace") or None, block[start:-2], block))
                else:
                    append(self._event(block))
                pos = end
                i = find(b"\n", end)
        else:
            # Walk the line terminators (memchr-fast single-byte finds; a few per event).
            cr, lf = find(b"\r", scan), find(b"\n", scan)
            while True:
                i = lf if cr < 0 or 0 <= lf < cr else cr
                if i < 0 or i + 1 == n:
                    break  # the pair, if any, completes in the next chunk
                follower = buf[i + 1]
                if follower == _LF:
                    if buf[i] == _CR:  # "\r\n" is one terminator: look at what follows its "\n"
                        cr = find(b"\r", i + 1)
                        continue
                    end = i + 2
                elif follower == _CR:
                    if i + 2 < n:
                        end = i + 3 if buf[i + 2] == _LF else i + 2
                    elif final:
                        end = i + 2
                    else:
                        # A "\r" at the very end may be the first half of "\r\n": the "\n" belongs
                        # to this event's raw bytes, so wait for the next byte (or the end).
                        deferred = i
                        break
                else:  # a line ended; the next one is not blank
                    if buf[i] == _LF:
                        lf = find(b"\n", i + 1)
                    else:
                        cr = find(b"\r", i + 1)
                    continue
                block = bytes(buf[pos:end])  # free for bytes (the same object), a copy for the bytearray
                if (
                    block.startswith(b"data:")
                    and block.endswith(b"\r\n\r\n")
                    and find(b"\r", pos) == end - 4
                    and find(b"\n", pos) == end - 3
                    and self._started
                ):
                    # The common CRLF case, one data line: no need to split lines.
                    append(SSEEvent(None, block[6:-4] if block[5] == 0x20 else block[5:-4], block))
                else:
                    append(self._event(block))
                pos = end
                if cr < end:
                    cr = find(b"\r", end)
                if lf < end:
                    lf = find(b"\n", end)
        if copy:
            if pos:
                del self._buf[:pos]
        elif pos < n:
            self._buf = bytearray(memoryview(buf)[pos:])
        # The next search starts where a pair completed by the next chunk could start.
        self._scan = deferred - pos if deferred >= 0 else max(0, n - pos - 1)
        return events

    def _event(self, block: bytes) -> SSEEvent:
        if not self._started:
            self._started = True
            if block.startswith(_BOM):  # the spec strips one BOM at the start of the stream
                event = _parse_block(block[3:])
                event.raw = block
                return event
        return _parse_block(block)


class NDJSONParser:
    """Incremental newline-delimited JSON (Ollama, Cohere v1 streams): feed chunks, get whole lines.

    Lines come back without their "\\n" (or "\\r\\n"); blank lines are skipped since no JSON reader
    accepts them.
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> bytes:
        """Bytes of a line that has not ended yet."""
        return bytes(self._buf)

    def feed(self, chunk: bytes) -> list[bytes]:
        last = chunk.rfind(b"\n")
        if last < 0:
            self._buf += chunk
            return []
        if self._buf:
            self._buf += chunk[:last]
            text = bytes(self._buf)
            self._buf = bytearray(chunk[last + 1 :])
        else:
            text = chunk[:last]
            if last + 1 < len(chunk):
                self._buf = bytearray(chunk[last + 1 :])
        return _lines(text)

    def flush(self) -> list[bytes]:
        """The last line when the stream ends without a final newline."""
        text = bytes(self._buf)
        self._buf = bytearray()
        return _lines(text)


def _lines(text: bytes) -> list[bytes]:
    out = []
    for line in text.split(b"\n"):
        if line.endswith(b"\r"):
            line = line[:-1]
        if line.strip():
            out.append(line)
    return out
