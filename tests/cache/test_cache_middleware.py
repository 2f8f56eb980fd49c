"""CacheMiddleware alone around plain ASGI apps (no gateway, no router), under real uvicorn."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from aigw_asgi.cache import CacheMiddleware, MemoryStorage
from aigw_asgi.config import CacheConfig
from aigw_asgi.context import ensure_context, get_context

SSE = [b'data: {"n":1}\n\n', b'data: {"n":2}\n\n', b"data: [DONE]\n\n"]


class App:
    """A tiny upstream-like app: counts calls, answers JSON or SSE, as steered by attributes."""

    def __init__(self) -> None:
        self.calls = 0
        self.status = 200
        self.stream = False
        self.complete = True  # what a router would record in ctx.stream_complete
        self.body = b'{"answer":42}'
        self.seen_bodies: list[bytes] = []
        self.contexts: list[Any] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": "through"})
            await send({"type": "websocket.close"})
            return
        self.calls += 1
        message = await receive()
        self.seen_bodies.append(message.get("body", b""))
        ctx = get_context(scope)
        if self.stream:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status,
                    "headers": [(b"content-type", b"text/event-stream")],
                }
            )
            for chunk in SSE:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            if ctx is not None:
                ctx.stream, ctx.stream_complete = True, self.complete
            return
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [(b"content-type", b"application/json"), (b"set-cookie", b"s=1"), (b"x-upstream", b"1")],
            }
        )
        await send({"type": "http.response.body", "body": self.body})


@pytest.fixture
def app() -> App:
    return App()


def served(serve: Any, app: App, **config: Any) -> tuple[str, CacheMiddleware]:
    middleware = CacheMiddleware(app, CacheConfig(**{"ttl": 300, **config}), gateway_id="gw")
    return serve(middleware).url, middleware


def post(url: str, path: str = "/openai/chat/completions", **kw: Any) -> httpx.Response:
    kw.setdefault("json", {"model": "m", "messages": []})
    return httpx.post(url + path, **kw)


def test_hit_replays_status_headers_and_body_without_calling_the_app(serve, app: App) -> None:
    url, _ = served(serve, app)
    first = post(url)
    second = post(url)
    assert first.headers["cf-aig-cache-status"] == "MISS"  # added even though the app knows nothing of it
    assert second.headers["cf-aig-cache-status"] == "HIT" and second.content == b'{"answer":42}'
    assert second.headers["x-upstream"] == "1" and "set-cookie" not in second.headers
    assert second.headers["content-length"] == "13" and 0 <= int(second.headers["age"]) <= 5  # stored a moment ago
    assert second.headers["cf-aig-provider"] == "openai" and second.headers["cf-aig-model"] == "m"
    assert app.calls == 1
    assert app.seen_bodies == [b'{"model":"m","messages":[]}']  # the app got the body the cache read


def test_bypass_when_no_ttl_and_for_unkeyable_requests(serve, app: App) -> None:
    url, _ = served(serve, app, ttl=0)
    for _ in range(2):
        assert post(url).headers["cf-aig-cache-status"] == "MISS"
    url, _ = served(serve, app)
    for _ in range(2):
        assert httpx.put(url + "/openai/files", content=b"x").headers["cf-aig-cache-status"] == "MISS"
        assert post(url, path="/").headers["cf-aig-cache-status"] == "MISS"
    assert app.calls == 6


def test_context_records_hit_miss_bypass_and_the_key(serve, app: App) -> None:
    seen: list[Any] = []
    inner = CacheMiddleware(app, CacheConfig(ttl=300), gateway_id="gw")

    async def outer(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await inner(scope, receive, send)
        if scope["type"] == "http":
            seen.append(get_context(scope))

    url = serve(outer).url
    post(url)
    post(url)
    httpx.delete(url + "/openai/x")
    assert [c.cache_status for c in seen] == ["MISS", "HIT", "BYPASS"]
    assert seen[0].cache_key == seen[1].cache_key and seen[0].cache_key.startswith("openai:")
    assert seen[1].status_code == 200 and seen[1].response_body == b'{"answer":42}' and seen[1].model == "m"
    assert seen[2].cache_key is None


def test_non_2xx_is_not_stored(serve, app: App) -> None:
    url, _ = served(serve, app)
    app.status = 500
    assert post(url).status_code == 500
    app.status = 200
    assert post(url).headers["cf-aig-cache-status"] == "MISS"
    assert post(url).headers["cf-aig-cache-status"] == "HIT"
    assert app.calls == 2


def test_answers_above_max_entry_bytes_are_relayed_but_not_stored(serve, app: App) -> None:
    url, _ = served(serve, app, max_entry_bytes=1024, max_bytes=4096)
    app.body = b'{"big":"' + b"x" * 2000 + b'"}'
    assert post(url).content == app.body
    assert post(url).headers["cf-aig-cache-status"] == "MISS"
    assert app.calls == 2


def test_stream_stored_only_when_complete(serve, app: App) -> None:
    url, _ = served(serve, app)
    app.stream, app.complete = True, False
    assert post(url).content == b"".join(SSE)
    assert post(url).headers["cf-aig-cache-status"] == "MISS"  # nobody vouched it was whole
    app.complete = True
    post(url)
    hit = post(url)
    assert hit.headers["cf-aig-cache-status"] == "HIT" and hit.content == b"".join(SSE)
    assert hit.headers["content-type"] == "text/event-stream"
    assert app.calls == 3


def test_streams_not_stored_when_cache_streams_is_off(serve, app: App) -> None:
    url, _ = served(serve, app, cache_streams=False)
    app.stream = True
    post(url)
    assert post(url).headers["cf-aig-cache-status"] == "MISS" and app.calls == 2


def test_invalid_header_is_400_2004_and_the_app_is_not_called(serve, app: App) -> None:
    url, _ = served(serve, app)
    resp = post(url, headers={"cf-aig-cache-ttl": "10"})
    assert resp.status_code == 400 and resp.json()["error"][0]["code"] == 2004
    assert "cf-aig-cache-ttl" in resp.json()["error"][0]["message"] and app.calls == 0


def test_body_too_large_is_413(serve, app: App) -> None:
    middleware = CacheMiddleware(app, CacheConfig(ttl=300), max_request_bytes=10)
    resp = post(serve(middleware).url)
    assert resp.status_code == 413 and resp.json()["error"][0]["code"] == 2007 and app.calls == 0


def test_websocket_and_lifespan_pass_through(serve, app: App) -> None:
    from websockets.sync.client import connect

    server = serve(CacheMiddleware(app, CacheConfig(ttl=300)), lifespan="on")
    with connect(f"{server.ws_url}/openai/realtime") as ws:
        assert ws.recv() == "through"


async def test_injected_storage_and_purge() -> None:
    storage = MemoryStorage()
    app = App()
    middleware = CacheMiddleware(app, CacheConfig(ttl=300), storage=storage)
    transport = httpx.ASGITransport(app=middleware)  # in-loop, so purge and requests share a loop
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await client.post("/openai/a", json={})
        await client.post("/groq/a", json={})
        assert len(storage) == 2
        assert await middleware.purge(provider="groq") == 1
        assert (await client.post("/openai/a", json={})).headers["cf-aig-cache-status"] == "HIT"
        assert await middleware.purge() == 1 and len(storage) == 0
    await middleware.aclose()


async def test_single_flight_in_one_loop() -> None:
    gate, entered = asyncio.Event(), asyncio.Event()
    calls = 0

    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal calls
        calls += 1
        await receive()
        entered.set()
        await gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{}"})

    middleware = CacheMiddleware(slow, CacheConfig(ttl=300))
    transport = httpx.ASGITransport(app=middleware)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        tasks = [asyncio.create_task(client.post("/openai/a", json={"q": 1})) for _ in range(10)]
        await entered.wait()
        await asyncio.sleep(0.05)  # the other nine reach the single-flight wait
        assert calls == 1
        gate.set()
        responses = await asyncio.gather(*tasks)
    assert calls == 1 and all(r.content == b"{}" for r in responses)
    assert not middleware._inflight


class BrokenStorage(MemoryStorage):
    async def get(self, key: str) -> Any:
        raise ConnectionError("down")

    async def set(self, key: str, value: Any, ttl: int) -> None:
        raise ConnectionError("down")


async def test_a_storage_that_raises_is_a_miss_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    app = App()
    middleware = CacheMiddleware(app, CacheConfig(ttl=300), storage=BrokenStorage())
    transport = httpx.ASGITransport(app=middleware)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for _ in range(2):
            resp = await client.post("/openai/a", json={})
            assert resp.status_code == 200 and resp.headers["cf-aig-cache-status"] == "MISS"
    assert app.calls == 2 and any("storage get failed" in r.getMessage() for r in caplog.records)


class RouterLikeApp(App):
    """Records the model as the router does, so a stored entry knows it (a hit then parses nothing)."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        ctx = get_context(scope)
        if ctx is not None:
            ctx.model = "m"
        await super().__call__(scope, receive, send)


async def _post_direct(
    middleware: Any, body: bytes, headers: list[tuple[bytes, bytes]] | None = None, token: str | None = None
) -> Any:
    """One POST through ``middleware`` called directly; the request's context, as it ended.

    ``token``: the gateway token's name, recorded on the context as auth does before the cache.
    """
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/openai/chat/completions",
        "raw_path": b"/openai/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), *(headers or [])],
        "state": {},
    }
    ensure_context(scope, "gw").token_name = token
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await middleware(scope, receive, send)
    ctx = get_context(scope)
    assert ctx is not None and sent[0]["status"] == 200
    return ctx


async def test_the_same_json_bytes_again_skip_the_parse_and_land_on_the_canonical_key() -> None:
    """A body's key is remembered by its exact bytes: asked again, it is not parsed, and the key
    is the one the canonical body gives (another spelling of the same JSON still finds it)."""
    app = RouterLikeApp()
    middleware = CacheMiddleware(app, CacheConfig(ttl=300), gateway_id="gw")
    body = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0}'
    first = await _post_direct(middleware, body)
    again = await _post_direct(middleware, body)
    spelled_otherwise = b'{ "temperature": 0, "messages": [{"content":"hi","role":"user"}], "model": "m" }'
    spelled = await _post_direct(middleware, spelled_otherwise)
    assert [c.cache_status for c in (first, again, spelled)] == ["MISS", "HIT", "HIT"]
    assert first._json_parsed and not again._json_parsed and spelled._json_parsed
    assert first.cache_key == again.cache_key == spelled.cache_key
    assert again.model == "m" and app.calls == 1


async def test_remembered_keys_keep_credentials_and_tokens_apart_and_skip_what_is_not_json() -> None:
    app = RouterLikeApp()
    middleware = CacheMiddleware(app, CacheConfig(ttl=300), gateway_id="gw")
    body = b'{"model":"m","messages":[]}'
    alice = [(b"authorization", b"Bearer sk-alice")]
    bob = [(b"authorization", b"Bearer sk-bob")]
    seen = [await _post_direct(middleware, body, h) for h in (alice, alice, bob, bob)]
    assert [c.cache_status for c in seen] == ["MISS", "HIT", "MISS", "HIT"]
    assert seen[0].cache_key != seen[2].cache_key and not seen[3]._json_parsed
    tokens = [await _post_direct(middleware, body, token=t) for t in ("team-a", "team-a", "team-b")]
    assert [c.cache_status for c in tokens] == ["MISS", "HIT", "MISS"]
    assert len({c.cache_key for c in tokens}) == 2 and app.calls == 4
    remembered = len(middleware._canonical)
    assert remembered == 4  # alice, bob, team-a, team-b
    not_json = await _post_direct(middleware, b"{not json")
    assert not_json.cache_status == "MISS" and len(middleware._canonical) == remembered


async def test_the_remembered_keys_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from aigw_asgi.cache import middleware as module

    monkeypatch.setattr(module, "CANONICAL_MEMO", 8)
    middleware = CacheMiddleware(RouterLikeApp(), CacheConfig(ttl=300), gateway_id="gw")
    for n in range(20):
        await _post_direct(middleware, b'{"n":%d}' % n)
        assert 1 <= len(middleware._canonical) <= 8
    again = await _post_direct(middleware, b'{"n":19}')
    assert again.cache_status == "HIT" and not again._json_parsed


async def test_the_kept_hash_states_stay_bounded_and_each_credential_keeps_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aigw_asgi.cache import middleware as module

    monkeypatch.setattr(module, "_HEADS", 4)
    app = RouterLikeApp()
    middleware = CacheMiddleware(app, CacheConfig(ttl=300), gateway_id="gw")
    for n in range(10):
        seen = [await _post_direct(middleware, b'{"q":1}', [(b"authorization", b"Bearer k%d" % n)]) for _ in range(2)]
        assert [c.cache_status for c in seen] == ["MISS", "HIT"] and not seen[1]._json_parsed
        assert 1 <= len(middleware._heads) <= 4
    assert app.calls == 10
