"""RateLimitMiddleware on its own around a tiny ASGI app, under real uvicorn, memory and real Redis."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from limits.aio.strategies import FixedWindowRateLimiter
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from aigw_asgi._asgi import lifespan_loop
from aigw_asgi.config import RateLimitConfig, RateLimitRule
from aigw_asgi.context import RequestContext, ensure_context
from aigw_asgi.ratelimit import RateLimitMiddleware
from aigw_asgi.ratelimit.keys import window_key
from aigw_asgi.ratelimit.memory import LoopMemoryStorage
from tests.servers import RedisClusterServer, RedisServer, ServerThread


class Inner:
    """The app behind the rate limit: counts what reaches it (what would reach a provider)."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan_loop(receive, send, None, None)
            return
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": "hello"})
            await send({"type": "websocket.close", "code": 1000})
            return
        self.calls += 1
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})


class Outer:
    """Stands where telemetry and auth sit: keeps the context, sets ``token_name`` like auth does."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.contexts: list[RequestContext] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            ctx = ensure_context(scope)
            for name, value in scope["headers"]:
                if name == b"x-test-token":
                    ctx.token_name = value.decode()
            self.contexts.append(ctx)
        await self.app(scope, receive, send)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
def storage_uri(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    return request.getfixturevalue("redis_url")


Build = Callable[..., tuple[Inner, Outer, ServerThread]]


@pytest.fixture
def build(serve: Callable[..., ServerThread]) -> Build:
    def _build(config: RateLimitConfig, **kwargs: Any) -> tuple[Inner, Outer, ServerThread]:
        inner = Inner()
        outer = Outer(RateLimitMiddleware(inner, config, **kwargs))
        # uvicorn would otherwise rewrite the peer from X-Forwarded-For for loopback clients.
        return inner, outer, serve(outer, proxy_headers=False)

    return _build


def statuses(url: str, n: int, **kwargs: Any) -> list[int]:
    with httpx.Client() as client:
        return [client.post(url, content=b"{}", **kwargs).status_code for _ in range(n)]


def test_fixed_window_limits_then_resets_at_the_clock_boundary(build: Build, storage_uri: str) -> None:
    clock = Clock(1_000_020.0)
    window_end = (1_000_020 // 60 + 1) * 60
    inner, outer, server = build(RateLimitConfig(limit=3, period=60, storage=storage_uri), clock=clock)
    url = f"{server.url}/openai/chat/completions"
    assert statuses(url, 4) == [200, 200, 200, 429]
    assert inner.calls == 3  # the refused request never reached the app

    resp = httpx.post(url, content=b"{}")
    assert resp.status_code == 429
    body = resp.json()
    assert body == {
        "success": False,
        "result": [],
        "messages": [],
        "error": [{"code": 2003, "message": "Rate limited by rule 'gateway': 3 requests per 60 s"}],
    }
    reset = math.ceil(window_end - clock.now)
    assert resp.headers["retry-after"] == resp.headers["ratelimit-reset"] == str(reset)
    assert resp.headers["ratelimit-limit"] == "3" and resp.headers["ratelimit-remaining"] == "0"
    assert resp.headers["cf-aig-log-id"] == outer.contexts[-1].log_id
    ctx = outer.contexts[-1]
    assert (ctx.rate_limited_by, ctx.status_code, ctx.error_code) == ("gateway", 429, 2003)

    clock.now = window_end - 0.001  # still the same window
    assert statuses(url, 1) == [429]
    clock.now = window_end  # the clock-aligned boundary: a fresh window
    assert statuses(url, 4) == [200, 200, 200, 429]
    assert inner.calls == 6


def test_sliding_window_remembers_the_previous_window(build: Build, storage_uri: str) -> None:
    """Right after a window ends, a fixed window would allow the full limit again; sliding does not."""
    inner, _, server = build(RateLimitConfig(limit=2, period=1, technique="sliding", storage=storage_uri))
    url = f"{server.url}/openai/x"
    # Memory windows are clock-aligned, Redis windows start at the first hit: start right after
    # a whole second so both begin (nearly) together.
    time.sleep(math.ceil(time.time()) - time.time() + 0.02)
    with httpx.Client() as client:
        first = [client.post(url, content=b"{}").status_code]
        answered = time.time()  # the first hit was counted before this, however long it took
        first += [client.post(url, content=b"{}").status_code for _ in range(2)]
    assert first == [200, 200, 429]
    # A second past the first hit (the Redis window has rolled over even when the first request
    # was slow to arrive: a new connection, the script loaded), well within the next half second.
    time.sleep(max(0.0, answered + 1.03 - time.time()))
    # The previous window (2 hits) still weighs ~1.9: one more request fits, not two.
    assert statuses(url, 3) == [200, 429, 429]
    assert inner.calls == 3


def test_scoped_rules_limit_one_value_and_not_another(build: Build) -> None:
    config = RateLimitConfig(
        rules=[
            RateLimitRule(1, 60, name="per-token", scope=["token"]),
            RateLimitRule(2, 60, name="per-user", scope=["metadata.user"]),
        ]
    )
    inner, outer, server = build(config)
    url = f"{server.url}/openai/x"

    def post(token: str | None = None, user: str | None = None) -> int:
        headers = {}
        if token:
            headers["x-test-token"] = token
        if user:
            headers["cf-aig-metadata"] = json.dumps({"user": user})
        return httpx.post(url, headers=headers).status_code

    assert [post(token="app"), post(token="app"), post(token="ci")] == [200, 429, 200]
    assert outer.contexts[1].rate_limited_by == "per-token"
    assert [post(user="alice"), post(user="alice"), post(user="alice"), post(user="bob")] == [200, 200, 429, 200]
    assert outer.contexts[-2].rate_limited_by == "per-user"
    # No token and no metadata key: neither rule applies.
    assert [post(), post(), post()] == [200, 200, 200]
    assert inner.calls == 8


def test_ip_rule_honours_only_the_configured_proxy_header(build: Build) -> None:
    config = RateLimitConfig(rules=[RateLimitRule(1, 60, name="per-ip", scope=["ip"])])
    _, _, server = build(config, trusted_proxy_header="X-Forwarded-For")
    url = f"{server.url}/openai/x"
    post = lambda xff: httpx.post(url, headers={"x-forwarded-for": xff}).status_code  # noqa: E731
    assert post("1.1.1.1") == 200
    assert post("9.9.9.9, 1.1.1.1") == 429  # a forged first entry does not make a new client
    assert post("2.2.2.2") == 200

    _, _, plain = build(config)  # no trusted header: the socket peer, whatever the header says
    url = f"{plain.url}/openai/x"
    assert [post("1.1.1.1"), post("2.2.2.2")] == [200, 429]


def test_invalid_metadata_header_is_a_400(build: Build) -> None:
    inner, _, server = build(RateLimitConfig(rules=[RateLimitRule(1, 60, scope=["metadata.user"])]))
    resp = httpx.post(f"{server.url}/openai/x", headers={"cf-aig-metadata": "{not json"})
    assert resp.status_code == 400 and resp.json()["error"][0]["code"] == 2004
    assert inner.calls == 0


def test_websocket_upgrade_counts_and_is_refused_before_accept(build: Build) -> None:
    _, outer, server = build(RateLimitConfig(limit=1, period=60))
    with connect(server.ws_url + "/") as ws:
        assert ws.recv() == "hello"
    with pytest.raises(InvalidStatus) as refused:
        connect(server.ws_url + "/")
    response = refused.value.response
    assert response.status_code == 429
    assert response.headers["ratelimit-limit"] == "1" and int(response.headers["retry-after"]) >= 1
    assert json.loads(response.body)["error"][0]["code"] == 2003
    assert outer.contexts[-1].rate_limited_by == "gateway"


@pytest.mark.parametrize("fail_open", [True, False])
def test_redis_outage_fails_open_or_closed(
    build: Build, redis_url: str, redis_server: RedisServer, fail_open: bool, caplog: pytest.LogCaptureFixture
) -> None:
    config = RateLimitConfig(limit=2, period=60, storage=redis_url, fail_open=fail_open, timeout_ms=300)
    inner, outer, server = build(config, outage_backoff_s=0.2)
    url = f"{server.url}/openai/x"
    assert statuses(url, 3) == [200, 200, 429]

    redis_server.stop()
    caplog.set_level(logging.WARNING, logger="aigw_asgi.ratelimit")
    started = time.monotonic()
    outage = statuses(url, 5)
    assert time.monotonic() - started < 2.5  # bounded by timeout_ms, then the open circuit costs nothing
    if fail_open:
        assert outage == [200] * 5
    else:
        assert outage == [503] * 5
        resp = httpx.post(url)
        assert resp.json()["error"][0]["code"] == 2011
        assert outer.contexts[-1].error_code == 2011
    warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 1  # one warning per outage, not one per request
    assert "redis://" not in warnings[0].getMessage()

    redis_server.start()  # empty again: counting starts over once the circuit closes
    time.sleep(0.25)  # > outage_backoff_s: the next request probes Redis again
    assert statuses(url, 3) == [200, 200, 429]
    assert inner.calls == 2 + (5 if fail_open else 0) + 2


@pytest.mark.parametrize("technique", ["fixed", "sliding"])
def test_redis_cluster_storage(build: Build, redis_cluster: RedisClusterServer, technique: str) -> None:
    """fail_open = false: any CROSSSLOT or MOVED error would surface as a 503."""
    config = RateLimitConfig(
        limit=4,
        period=3600,
        technique=technique,  # type: ignore[arg-type]
        storage=f"redis+cluster://127.0.0.1:{redis_cluster.port}",
        fail_open=False,
        key_prefix=f"cluster-{technique}",
        rules=[RateLimitRule(2, 3600, name="per-user", technique=technique, scope=["metadata.user"])],  # type: ignore[arg-type]
    )
    inner, outer, server = build(config)
    url = f"{server.url}/openai/x"
    odd = {"cf-aig-metadata": '{"user":"a/{b}"}'}  # separators and hash-tag braces in a value
    assert statuses(url, 3, headers=odd) == [200, 200, 429]
    # The gateway-wide rule (checked first) counted all three: one more fits, then it refuses.
    assert statuses(url, 2) == [200, 429]
    assert outer.contexts[-1].rate_limited_by == "gateway"
    assert inner.calls == 3


async def test_check_and_debit_for_websocket_api_messages() -> None:
    """The WebSocket API dispatcher admits each message with check() and reports usage with debit()."""
    config = RateLimitConfig(
        rules=[
            RateLimitRule(2, 60, name="msgs", scope=["provider"]),
            RateLimitRule(20, 60, name="tokens", unit="tokens"),
        ]
    )
    limiter = RateLimitMiddleware(Inner(), config)

    def message(provider: str) -> RequestContext:
        ctx = RequestContext(gateway_id="default", method="POST", path=f"/{provider}/chat/completions", headers=[])
        ctx.provider = provider
        return ctx

    try:
        first = message("openai")
        assert await limiter.check(first) is None
        first.usage.tokens_in, first.usage.tokens_out = 10, 5
        await limiter.debit(first)
        assert await limiter.check(message("openai")) is None  # 15 < 20 tokens: admitted
        refused = await limiter.check(message("openai"))
        assert refused is not None and refused.status == 429 and "'msgs'" in refused.message
        second = message("anthropic")
        assert await limiter.check(second) is None
        second.usage.tokens_out = 10
        await limiter.debit(second)  # 25 tokens now
        spent = message("groq")
        error = await limiter.check(spent)
        assert error is not None and "'tokens'" in error.message and spent.rate_limited_by == "tokens"
        assert dict(error.headers)[b"ratelimit-limit"] == b"20"
    finally:
        await limiter.aclose()


async def test_fixed_request_rules_count_in_the_counter_limits_reads() -> None:
    """A fixed request rule is counted by the middleware itself (the storage's increment, its key
    kept between requests): `limits`' own FixedWindowRateLimiter must read the same counter, or a
    429 would report another window's stats; gateway-wide and token-scoped rules alike."""
    clock = Clock(1_000_020.0)
    storage = LoopMemoryStorage()
    config = RateLimitConfig(
        limit=5, period=60, rules=[RateLimitRule(4, 60, name="per-token", scope=["token"], technique="fixed")]
    )
    limiter = RateLimitMiddleware(Inner(), config, storage=storage, clock=clock)

    async def request(token: str) -> int:
        scope = {"type": "http", "method": "POST", "path": "/openai/chat/completions", "headers": [], "state": {}}
        ensure_context(scope).token_name = token
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"{}"}

        async def send(message: Any) -> None:
            sent.append(message)

        await limiter(scope, receive, send)
        return int(sent[0]["status"])

    async def remaining(rule_name: str, key: str) -> int:
        rule = next(rule for rule in limiter.rules if rule.name == rule_name)
        stats = await FixedWindowRateLimiter(storage).get_window_stats(rule.item, window_key(rule, key, clock.now))
        return int(stats.remaining)

    assert [await request("a") for _ in range(2)] + [await request("b")] == [200, 200, 200]
    assert await remaining("gateway", "default/gateway") == 2
    assert await remaining("per-token", "default/per-token/a") == 2
    assert await remaining("per-token", "default/per-token/b") == 3
    assert [await request("a") for _ in range(3)] == [200, 200, 429]  # a's fourth, then a's fifth
    clock.now += 60  # the next window: new counters, a new key
    assert await request("a") == 200
    assert await remaining("gateway", "default/gateway") == 4
