"""Runs of Chat Completions chunks that tell a `StreamTracker` nothing, found in a few C scans.

A stream read under load holds many events per read: while the worker was busy with other
requests, the kernel queued what the provider kept sending (a fast model writes hundreds of
tokens a second; ``run.py``'s nginx sends a whole 21-event stream in one read). Most of them are
Chat Completions chunks closed by ``"usage":null}`` -- what ``stream_options.include_usage``
makes every chunk but the last one say -- and the tracker only counts them. Its loop spends
~0.6 µs on each; a run of them costs three scans of its bytes here, ~0.36 µs per event
(benchmarks/README.md, sixth pass), and no Python step per event.

No false positives: a JSON key in quotes cannot occur unescaped inside a string value, so
``{"id":"chatcmpl-`` after ``data: `` at a line start, ``"usage":null}`` before a blank line and
``"error"`` anywhere are what they look like. A run holds exactly the events the tracker's own
loop would skip one at a time (`StreamTracker._feed_events`); anything else ends it or is left
to that loop.
"""

from __future__ import annotations

CHAT_CHUNK_START = b'{"id":"chatcmpl-'
NULL_USAGE_END = b'"usage":null}'
RUN_MIN_BYTES = 1024  # below this a read holds a few events at most: the loop is as quick

_FIRST = b"data: " + CHAT_CHUNK_START
_END = NULL_USAGE_END + b"\n\n"
_BETWEEN = _END + _FIRST  # where one plain event ends and the next begins
_ERROR = b'"error"'
_TAIL = 4  # events at the end of a read that may differ (the usage chunk, [DONE]) and are left out


def plain_run(chunk: bytes, pos: int) -> tuple[int, int]:
    """``(end, events)``: the whole events from ``pos`` (an event's start) to ``end`` are all
    one-line ``data: {"id":"chatcmpl-…"usage":null}`` events without an ``"error"`` key.

    The run stops before the read's last whole event unless that one is plain too, looking back
    over at most four events (the usage chunk and ``[DONE]`` end a stream); ``(pos, 0)`` when
    there is no run of two events or more.
    """
    if not chunk.startswith(_FIRST, pos):
        return pos, 0
    end = chunk.rfind(b"\n\n", pos) + 2
    if end < 2:
        return pos, 0
    left_out = 0
    while not chunk.endswith(_END, pos, end):
        left_out += 1
        before = chunk.rfind(b"\n\n", pos, end - 2)
        if left_out > _TAIL or before < 0:
            return pos, 0
        end = before + 2
    # The span starts like a plain event and ends like one; if every line break in it sits in a
    # seam between two plain events (or in the last one's blank line), then it is nothing but
    # one-line plain events: no comment, no second line, no blank line of its own.
    breaks = chunk.count(b"\n", pos, end)
    events = breaks // 2
    if events < 2 or breaks % 2 or chunk.count(_BETWEEN, pos, end) != events - 1 or chunk.find(_ERROR, pos, end) >= 0:
        return pos, 0
    return end, events
