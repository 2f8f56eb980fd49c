"""The SSE and NDJSON parsers against the WHATWG rules, however the network splits the bytes."""

from __future__ import annotations

import random

import pytest

from aigw_asgi.providers.sse import NDJSONParser, SSEEvent, SSEParser


def parse_all(chunks: list[bytes]) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    events.extend(parser.flush())
    assert parser.pending == b""
    return events


def fields(events: list[SSEEvent]) -> list[tuple[str | None, bytes]]:
    return [(e.event, e.data) for e in events]


def reference_events(stream: bytes) -> list[tuple[str | None, bytes]]:
    """A byte-by-byte transcription of the spec's parsing and dispatch rules (slow, obviously right).

    Returns only dispatched events (the spec skips blocks whose data buffer is empty).
    """
    if stream.startswith(b"\xef\xbb\xbf"):
        stream = stream[3:]
    lines: list[bytes] = []
    start = i = 0
    while i < len(stream):
        if stream[i] == 0x0D:
            lines.append(stream[start:i])
            i += 2 if stream[i + 1 : i + 2] == b"\n" else 1
            start = i
        elif stream[i] == 0x0A:
            lines.append(stream[start:i])
            i += 1
            start = i
        else:
            i += 1
    events: list[tuple[str | None, bytes]] = []
    data, event_type = b"", b""
    for line in lines:
        if line == b"":
            if data == b"":
                event_type = b""
                continue
            events.append((event_type.decode("utf-8", "replace") or None, data[:-1]))
            data, event_type = b"", b""
        elif line.startswith(b":"):
            continue
        else:
            name, _, value = line.partition(b":")
            if value.startswith(b" "):
                value = value[1:]
            if name == b"data":
                data += value + b"\n"
            elif name == b"event":
                event_type = value
    return events


OPENAI_LIKE = (
    b'data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
    b'data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":" there"}}]}\n\n'
    b"data: [DONE]\n\n"
)

ANTHROPIC_LIKE = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"id":"msg_01","model":"claude-sonnet-4-5"}}\n\n'
    b"event: ping\n"
    b'data: {"type": "ping"}\n\n'
    b"event: message_stop\n"
    b'data: {"type":"message_stop"}\n\n'
)


def test_single_data_line_events() -> None:
    events = SSEParser().feed(OPENAI_LIKE)
    assert fields(events) == [
        (None, b'{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":"Hi"}}]}'),
        (None, b'{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":" there"}}]}'),
        (None, b"[DONE]"),
    ]
    assert b"".join(e.raw for e in events) == OPENAI_LIKE
    assert events[2].raw == b"data: [DONE]\n\n"


def test_named_events() -> None:
    events = SSEParser().feed(ANTHROPIC_LIKE)
    assert [e.event for e in events] == ["message_start", "ping", "message_stop"]
    assert events[1].data == b'{"type": "ping"}'
    assert events[1].raw == b'event: ping\ndata: {"type": "ping"}\n\n'


def test_comments_id_retry_and_unknown_fields_stay_in_raw_only() -> None:
    stream = b": OPENROUTER PROCESSING\n\nid: 42\nretry: 3000\nfoo: bar\n: note\ndata: x\n\n"
    events = parse_all([stream])
    assert fields(events) == [(None, b""), (None, b"x")]
    assert events[0].raw == b": OPENROUTER PROCESSING\n\n"  # returned so a forwarder can keep it alive
    assert events[1].raw == b"id: 42\nretry: 3000\nfoo: bar\n: note\ndata: x\n\n"


def test_multiline_data_and_value_spacing() -> None:
    stream = b"data: first\ndata:second\ndata:  third\ndata\ndata: \n\n"
    assert fields(parse_all([stream])) == [(None, b"first\nsecond\n third\n\n")]


def test_event_field_last_wins_and_empty_means_default() -> None:
    assert fields(parse_all([b"event: a\nevent: b\ndata: 1\n\nevent:\ndata: 2\n\n"])) == [
        ("b", b"1"),
        (None, b"2"),
    ]


@pytest.mark.parametrize("newline", [b"\r\n", b"\r", b"\n"])
def test_line_endings(newline: bytes) -> None:
    stream = ANTHROPIC_LIKE.replace(b"\n", newline)
    events = parse_all([stream])
    assert fields(events) == fields(parse_all([ANTHROPIC_LIKE]))
    assert b"".join(e.raw for e in events) == stream
    assert events[0].raw.endswith(newline + newline)


def test_gemini_crlf_stream() -> None:
    stream = (
        b'data: {"candidates": [{"content": {"parts": [{"text": "Hi"}],"role": "model"},"index": 0}]}\r\n\r\n'
        b'data: {"candidates": [{"content": {"parts": [{"text": "!"}],"role": "model"},'
        b'"finishReason": "STOP","index": 0}]}\r\n\r\n'
    )
    events = parse_all([stream])
    assert len(events) == 2
    assert events[1].data.endswith(b'"finishReason": "STOP","index": 0}]}')
    assert events[0].raw.endswith(b"}]}\r\n\r\n")


def test_mixed_line_endings() -> None:
    stream = b"data: a\r\n\ndata: b\n\r\ndata: c\r\r\ndata: d\r\rdata: e\r\n\r\n"
    events = parse_all([stream])
    assert fields(events) == [(None, b"a"), (None, b"b"), (None, b"c"), (None, b"d"), (None, b"e")]
    assert [e.raw for e in events] == [
        b"data: a\r\n\n",
        b"data: b\n\r\n",
        b"data: c\r\r\n",
        b"data: d\r\r",
        b"data: e\r\n\r\n",
    ]


@pytest.mark.parametrize(
    "stream",
    [
        OPENAI_LIKE,
        ANTHROPIC_LIKE,
        ANTHROPIC_LIKE.replace(b"\n", b"\r\n"),
        ANTHROPIC_LIKE.replace(b"\n", b"\r"),
        b"\xef\xbb\xbfdata: a\r\n\ndata: b\n\r\n: c\r\r\ndata: d\r\r\n\n\ndata: e\r\n\r\ndata: tail",
    ],
    ids=["lf", "named", "crlf", "cr", "mixed"],
)
def test_every_split_point_gives_the_same_events(stream: bytes) -> None:
    whole = parse_all([stream])
    assert b"".join(e.raw for e in whole) == stream
    for i in range(len(stream) + 1):
        assert parse_all([stream[:i], stream[i:]]) == whole, i
    assert parse_all([stream[i : i + 1] for i in range(len(stream))]) == whole


def test_split_inside_crlf_waits_for_the_lf() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r\n\r") == []  # the "\r" may be the start of "\r\n"
    assert parser.pending == b"data: a\r\n\r"
    (event,) = parser.feed(b"\ndata: b")
    assert event.raw == b"data: a\r\n\r\n"
    assert parser.pending == b"data: b"


def test_trailing_lone_cr_is_an_event_at_the_end_of_the_stream() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r\r") == []
    assert fields(parser.flush()) == [(None, b"a")]


def test_pending_and_flush_of_an_unterminated_event() -> None:
    parser = SSEParser()
    assert parser.feed(b'data: {"a":') == []
    assert parser.feed(b"1}\n") == []
    assert parser.pending == b'data: {"a":1}\n'
    (event,) = parser.flush()
    assert (event.event, event.data, event.raw) == (None, b'{"a":1}', b'data: {"a":1}\n')
    assert parser.pending == b""
    assert parser.flush() == []


def test_bom_is_skipped_for_fields_but_kept_in_raw() -> None:
    (event,) = parse_all([b"\xef\xbb\xbf", b"data: x\n\n"])
    assert event.data == b"x"
    assert event.raw == b"\xef\xbb\xbfdata: x\n\n"


def test_leading_and_repeated_blank_lines() -> None:
    events = parse_all([b"\n\ndata: a\n\n\ndata: b\n\n"])
    assert fields(events) == [(None, b""), (None, b"a"), (None, b"b")]
    assert [e.raw for e in events] == [b"\n\n", b"data: a\n\n", b"\ndata: b\n\n"]


def test_a_large_event_in_small_chunks() -> None:
    payload = b'{"b64":"' + b"A" * 300_000 + b'"}'
    stream = b"event: image\ndata: " + payload + b"\n\ndata: [DONE]\n\n"
    events = parse_all([stream[i : i + 1000] for i in range(0, len(stream), 1000)])
    assert fields(events) == [("image", payload), (None, b"[DONE]")]


def _random_stream(rng: random.Random) -> bytes:
    alphabet = b'ab: {}"x\xc3\xa9'
    parts = [b"\xef\xbb\xbf"] if rng.random() < 0.2 else []
    for _ in range(rng.randint(1, 25)):
        value = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
        line = rng.choice(
            [b"data: " + value, b"data:" + value, b"data", b"event: " + value, b"event:", b": " + value]
            + [b"id: 1", b"retry: 10", b"foo:" + value, b"", b"", b""]
        )
        parts.append(line + rng.choice([b"\n", b"\r\n", b"\r"]))
    parts.append(b"\n\ndata: end\n\n")
    return b"".join(parts)


def test_random_streams_match_the_reference_parser() -> None:
    rng = random.Random(20240611)
    for n in range(600):
        stream = _random_stream(rng)
        if n % 2:
            stream = stream.replace(b"\r", b"")  # the LF-only paths are separate
        cuts = sorted(rng.sample(range(len(stream) + 1), min(len(stream), rng.randint(0, 6))))
        chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        events = parse_all(chunks)
        assert b"".join(e.raw for e in events) == stream
        assert parse_all([e.raw for e in events]) == events  # one event per chunk: the fastest path
        assert [(e, d) for e, d in fields(events) if d] == [(e, d) for e, d in reference_events(stream) if d], stream


# -- NDJSON ----------------------------------------------------------------------------------------

OLLAMA_NDJSON = (
    b'{"model":"llama3.2","created_at":"2025-01-10T14:13:43.416799Z","message":{"role":"assistant",'
    b'"content":"Hi"},"done":false}\n'
    b'{"model":"llama3.2","created_at":"2025-01-10T14:13:43.5Z","message":{"role":"assistant",'
    b'"content":""},"done_reason":"stop","done":true,"prompt_eval_count":26,"eval_count":2}\n'
)


def test_ndjson_lines() -> None:
    parser = NDJSONParser()
    lines = parser.feed(OLLAMA_NDJSON)
    assert lines == OLLAMA_NDJSON.split(b"\n")[:2]
    assert parser.pending == b""
    assert parser.flush() == []


def test_ndjson_every_split_point() -> None:
    expected = OLLAMA_NDJSON.split(b"\n")[:2]
    for i in range(len(OLLAMA_NDJSON) + 1):
        parser = NDJSONParser()
        lines = parser.feed(OLLAMA_NDJSON[:i]) + parser.feed(OLLAMA_NDJSON[i:]) + parser.flush()
        assert lines == expected, i


def test_ndjson_crlf_blank_lines_and_unterminated_last_line() -> None:
    parser = NDJSONParser()
    assert parser.feed(b'{"a":1}\r\n\r\n  \n{"b"') == [b'{"a":1}']
    assert parser.pending == b'{"b"'
    assert parser.feed(b":2}") == []
    assert parser.flush() == [b'{"b":2}']
    assert parser.flush() == []
