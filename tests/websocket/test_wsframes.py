"""The WebSocket API's pure pieces: frame parsing, session headers, answer-to-frame translation."""

from __future__ import annotations

import json

import pytest

from aigw_asgi.errors import RateLimited
from aigw_asgi.wsframes import (
    Create,
    FrameError,
    decode_response,
    error_frame,
    error_from_answer,
    frame_size,
    parse_frame,
    session_headers,
)

STEP = {"provider": "openai", "endpoint": "chat/completions", "query": {"model": "m"}}


def frame(**fields: object) -> str:
    return json.dumps({"type": "universal.create", **fields})


def test_step_object_with_event_id() -> None:
    parsed = parse_frame(frame(request={**STEP, "eventId": "e"}))
    assert parsed == Create("e", STEP)  # eventId is not a step key: removed before the steps are parsed


def test_array_takes_the_frame_event_id_else_the_first_step_one() -> None:
    assert parse_frame(frame(eventId="top", request=[{**STEP, "eventId": "s"}, STEP])) == Create("top", [STEP, STEP])
    assert parse_frame(frame(request=[STEP, {**STEP, "eventId": "b"}, {**STEP, "eventId": "c"}])).event_id == "b"
    assert parse_frame(frame(eventId="top", request={**STEP, "eventId": "inner"})) == Create("top", STEP)


def test_parsing_leaves_the_callers_objects_alone() -> None:
    step = {**STEP, "eventId": "e"}
    parse_frame(json.dumps({"type": "universal.create", "request": step}).encode())
    assert step["eventId"] == "e"


@pytest.mark.parametrize(
    ("data", "event_id", "words"),
    [
        ("{", None, "not JSON"),
        (b"\xff\xfe", None, "not JSON"),
        ("null", None, "expected a JSON object"),
        (json.dumps({"request": {**STEP, "eventId": "a"}}), "a", "missing type"),
        (json.dumps({"type": "response.create", "eventId": "a"}), "a", "unknown type 'response.create'"),
        (frame(eventId="a"), "a", "missing request"),
        (frame(request=STEP), None, "missing eventId"),
        (frame(request=[STEP]), None, "missing eventId"),
        (frame(request=STEP, eventId=""), None, "eventId must be"),
        (frame(request=STEP, eventId="x" * 257), None, "eventId must be"),
        (frame(request=STEP, eventId=["a"]), None, "eventId must be"),
        (frame(request=STEP, eventId="a\nb"), "a\nb", "line breaks"),
        (frame(request=STEP, eventId="€"), "€", "latin-1"),
        (frame(request=42, eventId="n"), "n", "request must be"),
    ],
)
def test_bad_frames_name_the_problem(data: str | bytes, event_id: str | None, words: str) -> None:
    with pytest.raises(FrameError) as caught:
        parse_frame(data)
    assert caught.value.error.code == 2004 and caught.value.error.status == 400
    assert caught.value.event_id == event_id and words in caught.value.error.message


def test_frame_size_counts_utf8_bytes() -> None:
    assert frame_size({"type": "websocket.receive", "text": "abc"}) == ("abc", 3)
    assert frame_size({"type": "websocket.receive", "text": "é€"})[1] == 5
    assert frame_size({"type": "websocket.receive", "bytes": b"\x00\x01"}) == (b"\x00\x01", 2)
    assert frame_size({"type": "websocket.receive", "text": None, "bytes": None}) == (b"", 0)


def test_session_headers_are_the_cf_aig_ones_without_the_token() -> None:
    headers = [
        (b"host", b"x"),
        (b"sec-websocket-key", b"k"),
        (b"cf-aig-authorization", b"Bearer t"),
        (b"cf-aig-cache-ttl", b"60"),
        (b"authorization", b"Bearer sk"),
        (b"cf-aig-metadata", b"{}"),
    ]
    assert session_headers(headers) == [(b"cf-aig-cache-ttl", b"60"), (b"cf-aig-metadata", b"{}")]


def test_decode_response() -> None:
    assert decode_response(b'{"a":1}') == ({"a": 1}, None)
    assert decode_response(b"plain text") == ("plain text", None)
    assert decode_response(b"") == ("", None)
    assert decode_response(b"\xff\x00") == ("/wA=", "base64")


def test_gateway_envelope_keeps_its_code() -> None:
    body = RateLimited("Rate limited: gateway limit").envelope()
    assert error_from_answer(429, body) == (2003, "Rate limited: gateway limit", None)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"error": {"message": "bad key", "type": "invalid_request_error"}}, "bad key"),  # OpenAI
        ({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}, "busy"),  # Anthropic
        ({"error": {"code": 400, "message": "no", "status": "INVALID_ARGUMENT"}}, "no"),  # Gemini
        ({"success": False, "errors": [{"code": 5006, "message": "wai"}]}, "wai"),  # Workers AI
        ({"error": "ollama says no"}, "ollama says no"),
        ({"detail": "hf"}, "hf"),
        ({"unexpected": True}, "Service Unavailable"),
    ],
)
def test_upstream_errors_carry_status_message_and_body(body: dict, message: str) -> None:
    code, text, response = error_from_answer(503, json.dumps(body).encode())
    assert (code, text, response) == (503, message, body)


def test_upstream_error_without_json() -> None:
    assert error_from_answer(502, b"<html>bad gateway</html>") == (
        502,
        "<html>bad gateway</html>",
        "<html>bad gateway</html>",
    )
    assert error_from_answer(599, b"") == (599, "HTTP 599", None)
    code, text, _ = error_from_answer(500, b"x" * 2000)
    assert code == 500 and len(text) == 501 and text.endswith("…")


def test_error_frame_shape() -> None:
    assert error_frame("e", 2004, "bad") == {
        "type": "universal.error",
        "metadata": {"eventId": "e"},
        "error": {"code": 2004, "message": "bad"},
    }
    with_body = error_frame("e", 500, "x", {"step": "1"}, {"error": "x"})
    assert with_body["metadata"] == {"eventId": "e", "step": "1"} and with_body["response"] == {"error": "x"}
