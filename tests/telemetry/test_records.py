"""Rows from contexts (pure): one per attempt, universal steps, payload switches, caps, redaction."""

from __future__ import annotations

import time

from aigw_asgi.context import RequestContext, Usage
from aigw_asgi.redact import Redactor
from aigw_asgi.telemetry.cost import PriceTable
from aigw_asgi.telemetry.records import RecordSettings, apply_cost, body_text, records_from_context

PRICES = PriceTable()


def settings(**kw: object) -> RecordSettings:
    base: dict[str, object] = {"collect_payload": True, "max_body_bytes": 1024, "prices": PRICES}
    base.update(kw)
    return RecordSettings(**base)  # type: ignore[arg-type]


def context(headers: list[tuple[bytes, bytes]] | None = None, **fields: object) -> RequestContext:
    ctx = RequestContext(gateway_id="g", method="POST", path="/openai/chat/completions", headers=headers or [])
    ctx.provider, ctx.model, ctx.status_code = "openai", "gpt-4o-mini", 200
    for key, value in fields.items():
        setattr(ctx, key, value)
    return ctx


def test_a_retried_request_gives_one_row_per_attempt() -> None:
    ctx = context(body=b'{"model":"gpt-4o-mini"}')
    first_id = ctx.log_id
    ctx.response_body = b'{"error":"busy"}'
    ctx.next_attempt(status_code=503, error="upstream 503", error_type="503")
    ctx.usage = Usage(tokens_in=10, tokens_out=5)
    ctx.first_byte = ctx.started + 0.01
    ctx.ended = ctx.started + 0.02
    apply_cost(ctx, PRICES)
    rows = records_from_context(ctx, settings())
    assert [r.id for r in rows] == [first_id, ctx.log_id]
    failed, answered = rows
    assert (failed.attempt, failed.status_code, failed.success, failed.cost) == (1, 503, False, None)
    assert failed.response_body == '{"error":"busy"}' and failed.request_body == '{"model":"gpt-4o-mini"}'
    assert (answered.attempt, answered.success, answered.tokens_in) == (2, True, 10)
    assert answered.cost == ctx.cost and answered.cost is not None
    assert answered.ttft_ms == 10.0 and answered.duration_ms == 20.0
    assert answered.created_at >= failed.created_at


def test_universal_requests_log_their_steps_not_themselves() -> None:
    parent = context()
    steps = []
    for i, provider in enumerate(("openai", "anthropic")):
        child = context(step=i, parent=parent, usage=Usage(tokens_in=10, tokens_out=5))
        child.provider = provider
        child.model = "gpt-4o-mini" if provider == "openai" else "claude-fake-1"
        steps.append(child)
    parent.children = steps
    apply_cost(parent, PRICES)
    rows = records_from_context(parent, settings())
    assert [(r.id, r.step, r.provider) for r in rows] == [(s.log_id, s.step, s.provider) for s in steps]
    assert steps[1].cost is None and parent.cost == steps[0].cost  # the unknown claude-fake-1 adds nothing made up


def test_collect_log_headers() -> None:
    off = context([(b"cf-aig-collect-log", b"false")], body=b"{}")
    assert records_from_context(off, settings()) == []
    no_payload = context([(b"cf-aig-collect-log-payload", b"false")], body=b"{}", response_body=b"{}")
    (row,) = records_from_context(no_payload, settings())
    assert row.request_body is None and row.response_body is None
    # The operator's collect_payload = false cannot be turned back on by a client.
    on = context([(b"cf-aig-collect-log-payload", b"true")], body=b"{}")
    (row,) = records_from_context(on, settings(collect_payload=False))
    assert row.request_body is None
    # An invalid header got its 400 elsewhere; the row is still written.
    bad = context([(b"cf-aig-collect-log", b"maybe")], status_code=400, error="Invalid header cf-aig-collect-log")
    (row,) = records_from_context(bad, settings())
    assert row.status_code == 400 and row.success is False


def test_bodies_are_capped_and_binary_is_not_stored() -> None:
    assert body_text(b"x" * 2000, 100) == "x" * 100
    assert body_text("é".encode() * 3, 5) == "éé"  # a cut multi-byte character is dropped
    assert body_text(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe" + b"\x00" * 20, 1024) == "<32 bytes of binary data>"
    assert body_text(b"", 10) is None


def test_secrets_are_redacted_from_bodies_and_errors() -> None:
    ctx = context(
        [(b"authorization", b"Bearer sk-client-own-key-123")],
        body=b'{"api_key": "sk-in-body-999", "messages": []}',
        response_body=b'{"error": "invalid key sk-client-own-key-123 and gw-token-abcdef"}',
        error="upstream said sk-client-own-key-123",
        status_code=401,
    )
    (row,) = records_from_context(ctx, settings(redactor=Redactor(["gw-token-abcdef"])))
    stored = " ".join(str(v) for v in (row.request_body, row.response_body, row.error))
    for secret in ("sk-client-own-key-123", "sk-in-body-999", "gw-token-abcdef"):
        assert secret not in stored
    assert "[REDACTED]" in row.response_body  # type: ignore[operator]


def test_cache_hits_and_errors() -> None:
    hit = context(cache_status="HIT", usage=Usage(tokens_in=10, tokens_out=5))
    apply_cost(hit, PRICES)
    (row,) = records_from_context(hit, settings())
    assert row.cached is True and row.cost == 0.0
    upstream_error = context(status_code=429, error_type="429", ended=time.perf_counter())
    (row,) = records_from_context(upstream_error, settings())
    assert row.success is False and row.error == "HTTP 429"


def test_every_field_of_a_row_is_what_its_context_says() -> None:
    """Every request's row is built positionally (the log writer's thread builds one per request):
    each field, by name, must hold what the context says. Across the two contexts the four flags
    (success, cached, custom_cost, stream) take four different pairs of values, and every other
    field a value of its own, so no two fields can trade places unseen."""
    from dataclasses import asdict

    def expected(ctx: RequestContext, **fields: object) -> dict[str, object]:
        base: dict[str, object] = {
            "id": ctx.log_id,
            "created_at": ctx.started_at,
            "gateway": "g",
            "provider": "openai",
            "model": "gpt-4o-mini-2024-07-18",
            "path": "/openai/chat/completions",
            "method": "POST",
            "step": 3,
            "attempt": 1,
            "event_id": "ev-7",
            "request_id": ctx.request_id,
            "duration_ms": 20.0,
            "ttft_ms": 10.0,
            "tokens_in": 11,
            "tokens_out": 22,
            "cached_tokens_in": 3,
            "cost": 0.25,
            "metadata": {"team": "blue"},
            "token_name": "tok",
            "client_ip": "10.1.2.3",
            "user_agent": "ua/1",
            "cache_key": "openai:abc",
            "rate_limited_by": "per-ip",
            "feedback": None,
            "score": None,
            "request_body": '{"model":"gpt-4o-mini"}',
            "response_body": "answer",
        }
        return {**base, **fields}

    def build(**fields: object) -> RequestContext:
        ctx = context(
            [(b"cf-aig-metadata", b'{"team":"blue"}')],
            body=b'{"model":"gpt-4o-mini"}',
            response_body=b"answer",
            response_model="gpt-4o-mini-2024-07-18",
            client_ip="10.1.2.3",
            user_agent="ua/1",
            event_id="ev-7",
            token_name="tok",
            step=3,
            usage=Usage(tokens_in=11, tokens_out=22, cached_tokens_in=3),
            cost=0.25,
            cache_key="openai:abc",
            rate_limited_by="per-ip",
            **fields,
        )
        ctx.first_byte, ctx.ended = ctx.started + 0.01, ctx.started + 0.02
        return ctx

    # custom_cost is true and stream false in both; success and cached take the two other pairs.
    for fields, derived in (
        (
            {"status_code": 502, "error": "upstream broke", "error_type": "UpstreamX", "cache_status": "HIT"},
            {"success": False, "cached": True},
        ),
        (
            {"status_code": 200, "error": None, "error_type": None, "cache_status": "MISS"},
            {"success": True, "cached": False},
        ),
    ):
        ctx = build(custom_cost=True, **fields)
        (row,) = records_from_context(ctx, settings())
        assert asdict(row) == expected(ctx, custom_cost=True, stream=False, **fields, **derived)
