"""Usage and model read off realtime frames (pure): OpenAI Realtime and Gemini Live."""

from __future__ import annotations

import base64
import json

from aigw_asgi.context import Usage
from aigw_asgi.realtime.events import SessionMeter, add_usage


def done(tokens_in: int, tokens_out: int, cached: int = 0, **extra: object) -> str:
    usage = {
        "total_tokens": tokens_in + tokens_out,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "input_token_details": {"cached_tokens": cached, "text_tokens": tokens_in, "audio_tokens": 0},
        "output_token_details": {"text_tokens": 1, "audio_tokens": tokens_out - 1},
    }
    return json.dumps(
        {"event_id": "event_1", "type": "response.done", "response": {"id": "r", "usage": usage}, **extra}
    )


def test_openai_usage_is_summed_over_responses() -> None:
    meter = SessionMeter("openai", model="gpt-realtime")
    assert meter.upstream_frame(done(10, 20, 4)) == Usage(tokens_in=10, tokens_out=20, cached_tokens_in=4)
    meter.upstream_frame(done(5, 7).encode())  # a binary frame holding JSON reads the same
    assert meter.usage == Usage(tokens_in=15, tokens_out=27, cached_tokens_in=4)
    assert meter.model == "gpt-realtime"


def test_openai_model_from_the_session_events() -> None:
    meter = SessionMeter("openai")
    created = {"type": "session.created", "event_id": "e", "session": {"model": "gpt-realtime-2025-08-28"}}
    assert meter.upstream_frame(json.dumps(created)) is None
    assert meter.response_model == "gpt-realtime-2025-08-28"


def test_frames_that_only_mention_an_event_are_not_usage() -> None:
    meter = SessionMeter("openai")
    delta = {"type": "response.output_audio.delta", "delta": base64.b64encode(b"\x00" * 9000).decode()}
    text = {"type": "response.output_text.delta", "delta": 'the event "response.done" ends it'}
    for frame in (json.dumps(delta), json.dumps(text), '{"type": "response.done", "response": null}', "not json"):
        assert meter.upstream_frame(frame) is None
    assert not meter.usage.known()


def test_gemini_usage_metadata_is_summed_per_turn() -> None:
    meter = SessionMeter("gemini")
    meter.client_frame(json.dumps({"setup": {"model": "models/gemini-2.0-flash-live-001"}}).encode())
    assert meter.model == "gemini-2.0-flash-live-001"
    meter.client_frame(json.dumps({"setup": {"model": "models/other"}}))  # only the first setup counts
    assert meter.model == "gemini-2.0-flash-live-001"
    turn = {
        "serverContent": {"turnComplete": True},
        "usageMetadata": {"promptTokenCount": 12, "cachedContentTokenCount": 2, "responseTokenCount": 30},
    }
    assert meter.upstream_frame(json.dumps({"serverContent": {"modelTurn": {"parts": []}}}).encode()) is None
    assert meter.upstream_frame(json.dumps(turn).encode()) == Usage(tokens_in=12, tokens_out=30, cached_tokens_in=2)
    thoughts = {"usageMetadata": {"promptTokenCount": 3, "thoughtsTokenCount": 4, "toolUsePromptTokenCount": 1}}
    meter.upstream_frame(json.dumps(thoughts))
    assert meter.usage == Usage(tokens_in=16, tokens_out=34, cached_tokens_in=2, reasoning_tokens_out=4)


def test_gemini_zero_output_is_omitted_on_the_wire() -> None:
    meter = SessionMeter("gemini")
    meter.upstream_frame(json.dumps({"usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}}))
    assert meter.usage == Usage(tokens_in=5, tokens_out=0)


def test_add_usage_keeps_unknown_unknown() -> None:
    total = Usage()
    add_usage(total, Usage(tokens_in=3))
    add_usage(total, Usage(tokens_in=4, tokens_out=None))
    assert total == Usage(tokens_in=7)
