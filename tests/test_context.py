from __future__ import annotations

import pytest

from aigw_asgi.context import RequestContext, ensure_context, get_context, route_path
from aigw_asgi.errors import InvalidRequest


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


def test_response_headers_name_each_id_as_it_stands() -> None:
    """Request and event ids start as the log id; a retry's fresh log id and a client's event id
    then differ from it, and each header says its own."""
    ctx = ensure_context({"type": "http", "method": "POST", "path": "/openai/x", "headers": []}, "gw")
    headers = dict(ctx.response_headers())
    assert headers[b"cf-aig-log-id"] == headers[b"cf-aig-request-id"] == headers[b"cf-aig-event-id"]
    assert headers[b"cf-aig-log-id"] == ctx.log_id.encode()
    first = ctx.log_id
    ctx.next_attempt(status_code=500, error="upstream 500", error_type="500")
    ctx.event_id = "client-chosen"
    headers = dict(ctx.response_headers())
    assert headers[b"cf-aig-log-id"] == ctx.log_id.encode() != first.encode()
    assert headers[b"cf-aig-request-id"] == first.encode() and headers[b"cf-aig-event-id"] == b"client-chosen"


def test_json_parsed_once_and_reset_by_set_body() -> None:
    ctx = RequestContext("gw", "POST", "/", [], body=b'{"a":1}')
    assert ctx.json() == {"a": 1} and ctx.json() is ctx.json()
    ctx.set_body(b"not json")
    assert ctx.json() is None
    headers = dict(ctx.response_headers())
    assert headers[b"cf-aig-cache-status"] == b"MISS" and headers[b"cf-aig-step"] == b"0"


# -- outcome verbs ------------------------------------------------------------------------------------


def _ctx() -> RequestContext:
    return RequestContext(gateway_id="g", method="POST", path="/openai/chat/completions", headers=[])


def test_fail_records_status_message_code_and_the_first_cause_wins() -> None:
    from aigw_asgi.context import ErrorType
    from aigw_asgi.errors import RateLimited, UpstreamTimeout

    ctx = _ctx()
    ctx.fail(UpstreamTimeout(), ErrorType.TIMEOUT)
    assert (ctx.status_code, ctx.error_code, ctx.error_type) == (504, 2006, "timeout")
    ctx.fail(RateLimited("slow down"))
    # status and message follow the answer actually made; the type keeps the root cause
    assert (ctx.status_code, ctx.error, ctx.error_code, ctx.error_type) == (429, "slow down", 2003, "timeout")
    fresh = _ctx()
    fresh.fail(RateLimited())
    assert fresh.error_type == "RateLimited"


def test_client_gone_is_499_only_when_nothing_was_answered() -> None:
    ctx = _ctx()
    ctx.client_gone()
    assert (ctx.status_code, ctx.error, ctx.error_type) == (499, "client disconnected", "client_disconnect")
    streaming = _ctx()
    streaming.answered(200)
    streaming.client_gone()
    assert (streaming.status_code, streaming.error_type) == (200, "client_disconnect")


def test_a_client_leaving_after_the_streams_terminal_event_is_not_an_error() -> None:
    """The openai SDK hangs up at [DONE]: whichever layer notices, the answer was complete."""
    ctx = _ctx()
    ctx.answered(200)
    ctx.stream = ctx.stream_complete = True
    ctx.client_gone()
    assert (ctx.status_code, ctx.error, ctx.error_type) == (200, None, None)


def test_broke_after_an_upstream_error_status_keeps_the_status_as_type() -> None:
    ctx = _ctx()
    ctx.answered(503)
    ctx.broke("upstream stream broke", "stream_error")
    assert (ctx.status_code, ctx.error, ctx.error_type) == (503, "upstream stream broke", "503")


def test_crashed_maps_cancellation_and_hides_exception_text() -> None:
    import asyncio

    ctx = _ctx()
    ctx.crashed(asyncio.CancelledError())
    assert (ctx.status_code, ctx.error_type) == (499, "cancelled")
    boom = _ctx()
    boom.crashed(RuntimeError("sk-secret-in-message"))
    assert boom.status_code == 500 and "sk-secret" not in (boom.error or "") and boom.error_type == "RuntimeError"


def test_adopt_takes_the_answering_child_and_answer_names_it() -> None:
    parent = _ctx()
    assert parent.answer is parent
    child = _ctx()
    child.step, child.provider, child.model = 1, "anthropic", "claude"
    child.answered(200)
    parent.children.append(child)
    parent.adopt(child)
    assert parent.answer is child
    assert (parent.step, parent.log_id, parent.provider, parent.status_code) == (1, child.log_id, "anthropic", 200)
    assert parent.ended is not None
