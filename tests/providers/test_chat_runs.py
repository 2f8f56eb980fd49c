"""Runs of plain Chat Completions chunks (providers/chat_runs.py) and the tracker that skips them."""

from __future__ import annotations

import random

import pytest

from aigw_asgi.providers.chat_runs import plain_run
from aigw_asgi.providers.stream import StreamTracker
from tests.providers.test_usage import state, track

HEAD = b'{"id":"chatcmpl-1","object":"chat.completion.chunk","model":"gpt-x",'


def plain(text: str = "hi") -> bytes:
    return b"data: " + HEAD + b'"choices":[{"index":0,"delta":{"content":"%s"}}],"usage":null}\n\n' % text.encode()


USAGE = b"data: " + HEAD + b'"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}\n\n'
DONE = b"data: [DONE]\n\n"

# Events the run must not swallow, each beside a plain one: they say something, or are shaped
# differently from what the run's scans recognise.
ODD = {
    "error in a chunk": b"data: " + HEAD + b'"choices":[],"error":{"message":"overloaded"},"usage":null}\n\n',
    "error event": b'event: error\ndata: {"error":{"message":"late"}}\n\n',
    "comment": b": keep-alive\n\n",
    "two data lines": b"data: " + HEAD + b'"choices":[],\ndata: "usage":null}\n\n',
    "no space after data:": b"data:" + HEAD + b'"choices":[{"index":0,"delta":{"content":"x"}}],"usage":null}\n\n',
    "id line": b"id: 7\n" + plain("x"),
    "not a chat chunk": b'data: {"type":"response.completed","response":{},"usage":null}\n\n',
    "usage": USAGE,
    "extra blank line": b"\n",
    "retry field": b'retry: {"usage":null}\n\n',
}


def read(chunks: list[bytes], strip: bool) -> tuple[tuple[object, ...], bytes]:
    """What the tracker makes of ``chunks``: its state and the bytes it forwarded."""
    tracker, out = track("openai", chunks, strip_usage_chunk=strip)
    return state(tracker), out


def test_a_run_stops_before_the_usage_chunk_and_done() -> None:
    stream = plain() * 5 + USAGE + DONE
    assert plain_run(stream, 0) == (len(plain()) * 5, 5)
    assert plain_run(stream, len(plain())) == (len(plain()) * 5, 4)  # from any event's start


def test_a_read_of_plain_events_only_is_one_run() -> None:
    stream = plain() * 3
    assert plain_run(stream, 0) == (len(stream), 3)
    partial = stream + plain()[:40]  # a trailing partial event is left to the parser
    assert plain_run(partial, 0) == (len(stream), 3)


@pytest.mark.parametrize("name", list(ODD))
def test_anything_else_between_plain_events_ends_the_run(name: str) -> None:
    stream = plain() * 3 + ODD[name] + plain() * 3 + DONE
    assert plain_run(stream, 0) == (0, 0)


def test_no_run_shorter_than_two_events_or_not_starting_at_a_plain_event() -> None:
    assert plain_run(plain() + USAGE + DONE, 0) == (0, 0)
    assert plain_run(DONE + plain() * 3, 0) == (0, 0)
    assert plain_run(plain() * 3 + USAGE * 5, 0) == (0, 0)  # more odd events at the end than it looks back over


@pytest.mark.parametrize("strip", [False, True])
def test_tracker_reads_runs_as_it_reads_the_stream_a_byte_at_a_time(strip: bool) -> None:
    """Random streams mixing plain chunks with every odd event, read whole, split at random and
    a byte at a time: the same model, usage, completion, error, event count and forwarded bytes."""
    rng = random.Random(17)
    odd = list(ODD.values())
    for _ in range(150):
        events = [plain(str(i)) for i in range(rng.randint(0, 3))]  # the model comes from the first
        for _ in range(rng.randint(1, 6)):
            events += [plain(str(rng.randint(0, 9))) for _ in range(rng.randint(0, 12))]
            if rng.random() < 0.6:
                events.append(rng.choice(odd))
        events += [USAGE, DONE] if rng.random() < 0.8 else [DONE]
        stream = b"".join(events)
        expected = read([stream[i : i + 1] for i in range(len(stream))], strip)
        assert read([stream], strip) == expected
        cuts = sorted(rng.sample(range(1, len(stream)), min(4, len(stream) - 1)))
        assert read([stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)], strip) == expected


def test_a_busy_read_is_skipped_as_one_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tracker reads the first chunk (the model), then takes the other plain ones as a run."""
    from aigw_asgi.providers import stream as stream_module

    runs: list[tuple[int, int]] = []

    def spy(chunk: bytes, pos: int) -> tuple[int, int]:
        runs.append(plain_run(chunk, pos))
        return runs[-1]

    monkeypatch.setattr(stream_module, "plain_run", spy)
    tracker = StreamTracker("openai", strip_usage_chunk=True)
    assert tracker.feed(plain() * 30 + USAGE + DONE) + tracker.finish() == plain() * 30 + DONE
    assert runs == [(len(plain()) * 30, 29)]
    assert (tracker.model, tracker.usage.tokens_out, tracker.completed, tracker.events) == ("gpt-x", 4, True, 32)
    runs.clear()
    StreamTracker("openai").feed(plain() * 2)  # a read of a few events: the loop alone
    assert runs == []
