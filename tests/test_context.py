from __future__ import annotations

import re
import uuid

import pytest

from aigw_asgi.context import RequestContext, ensure_context, get_context, route_path, uuid7
from aigw_asgi.errors import InvalidRequest


def test_uuid7_is_valid_and_time_ordered() -> None:
    ids = [uuid7() for _ in range(200)]
    for value in ids:
        parsed = uuid.UUID(value)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert re.fullmatch(r"[0-9a-f-]{36}", value)
    assert len(set(ids)) == 200
    # The 48-bit millisecond prefix never goes backwards.
    assert [i[:13] for i in ids] == sorted(i[:13] for i in ids)


def test_ensure_context_is_created_once_and_shared() -> None:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/ai/openai/x",
        "root_path": "/ai",
        "headers": [(b"cf-aig-event-id", b"ev-1"), (b"user-agent", b"ua")],
        "client": ("1.2.3.4", 5),
    }
    ctx = ensure_context(scope, "gw")
    assert ensure_context(scope) is ctx and get_context(scope) is ctx
    assert (ctx.gateway_id, ctx.path, ctx.event_id, ctx.user_agent, ctx.client_ip) == (
        "gw",
        "/openai/x",
        "ev-1",
        "ua",
        "1.2.3.4",
    )
    assert ctx.request_id == ctx.log_id


def test_route_path() -> None:
    assert route_path({"path": "/ai/x", "root_path": "/ai"}) == "/x"
    assert route_path({"path": "/ai", "root_path": "/ai"}) == "/"
    assert route_path({"path": "/x"}) == "/x"


def test_options_error_is_raised_to_every_asker() -> None:
    ctx = RequestContext("gw", "POST", "/", [(b"cf-aig-cache-ttl", b"nope")])
    for _ in range(2):
        with pytest.raises(InvalidRequest, match="cf-aig-cache-ttl"):
            _ = ctx.options
    assert ctx.metadata == {}


def test_next_attempt_keeps_the_failed_one() -> None:
    ctx = RequestContext("gw", "POST", "/", [])
    first = ctx.log_id
    ctx.usage.tokens_in = 5
    ctx.next_attempt(status_code=500, error="upstream 500", error_type="500")
    assert ctx.attempt == 2 and ctx.log_id != first and ctx.request_id == first
    assert ctx.attempts[0].log_id == first and ctx.attempts[0].usage.tokens_in == 5
    assert ctx.usage.tokens_in is None


def test_json_parsed_once_and_reset_by_set_body() -> None:
    ctx = RequestContext("gw", "POST", "/", [], body=b'{"a":1}')
    assert ctx.json() == {"a": 1} and ctx.json() is ctx.json()
    ctx.set_body(b"not json")
    assert ctx.json() is None
    headers = dict(ctx.response_headers())
    assert headers[b"cf-aig-cache-status"] == b"MISS" and headers[b"cf-aig-step"] == b"0"
