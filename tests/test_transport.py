"""Both upstream transports against a real server on loopback."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from aigw_asgi.config import UpstreamConfig
from aigw_asgi.errors import UpstreamTimeout, UpstreamUnreachable
from aigw_asgi.http1 import Http1Transport
from aigw_asgi.transport import AiohttpTransport, HttpxTransport, UpstreamStreamError
from tests.servers import free_port

TRANSPORTS = [Http1Transport, AiohttpTransport, HttpxTransport]


async def cookie_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Sets a cookie on every answer and echoes the Cookie header it received."""
    if scope["type"] != "http":
        return
    await receive()
    cookie = dict(scope["headers"]).get(b"cookie", b"")
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"set-cookie", b"session=client-a-secret; Path=/"), (b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"cookie=" + cookie})


async def read(resp: Any) -> bytes:
    try:
        return b"".join([chunk async for chunk in resp.stream()])
    finally:
        await resp.aclose()


@pytest.mark.parametrize("transport_cls", TRANSPORTS)
async def test_no_cookie_carries_over_between_clients(transport_cls: Any, serve) -> None:
    server = serve(cookie_app)
    transport = transport_cls(UpstreamConfig())
    try:
        first = await transport.request("POST", f"{server.url}/x", [], b"{}")
        assert await read(first) == b"cookie="
        second = await transport.request("POST", f"{server.url}/x", [], b"{}")
        assert await read(second) == b"cookie="  # client A's session never reaches client B's request
    finally:
        await transport.aclose()


@pytest.mark.parametrize("transport_cls", TRANSPORTS)
async def test_errors_map_to_gateway_errors(transport_cls: Any, fake_upstream) -> None:
    transport = transport_cls(UpstreamConfig(connect_timeout_ms=2000))
    try:
        with pytest.raises(UpstreamUnreachable):
            await transport.request("GET", f"http://127.0.0.1:{free_port()}/", [], b"")
        fake_upstream.app.delay_s = 2.0
        with pytest.raises(UpstreamTimeout):
            await transport.request(
                "POST", f"{fake_upstream.url}/v1/chat/completions", [], b"{}", first_byte_timeout=0.2
            )
        fake_upstream.app.delay_s = 0
        fake_upstream.app.break_after = 1
        resp = await transport.request(
            "POST",
            f"{fake_upstream.url}/v1/chat/completions",
            [("content-type", "application/json")],
            b'{"model":"m","stream":true,"messages":[]}',
        )
        assert resp.status == 200
        with pytest.raises(UpstreamStreamError):
            await read(resp)
    finally:
        await transport.aclose()


@pytest.mark.parametrize("transport_cls", TRANSPORTS)
async def test_compressed_bodies_are_relayed_raw(transport_cls: Any, fake_upstream) -> None:
    fake_upstream.app.gzip = True
    transport = transport_cls(UpstreamConfig())
    try:
        resp = await transport.request(
            "POST",
            f"{fake_upstream.url}/v1/chat/completions",
            [("content-type", "application/json")],
            b'{"model":"m","messages":[]}',
        )
        headers = {k.lower(): v for k, v in resp.headers}
        body = await read(resp)
        assert headers[b"content-encoding"] == b"gzip" and body[:2] == b"\x1f\x8b"  # not decompressed
        assert int(headers[b"content-length"]) == len(body)
    finally:
        await transport.aclose()


def paced_app(gaps: list[float], content_type: bytes = b"text/event-stream") -> Any:
    """Answers ``len(gaps) + 1`` chunks, waiting ``gaps[i]`` seconds before chunk i+1."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
        await send({"type": "http.response.body", "body": b"data: 0\n\n", "more_body": True})
        for i, gap in enumerate(gaps, 1):
            await asyncio.sleep(gap)
            await send({"type": "http.response.body", "body": b"data: %d\n\n" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


@pytest.mark.parametrize("transport_cls", TRANSPORTS)
async def test_a_silence_longer_than_the_idle_timeout_breaks_the_stream(transport_cls: Any, serve) -> None:
    """``idle_timeout_ms`` bounds each silence between two chunks, not the whole answer."""
    transport = transport_cls(UpstreamConfig(idle_timeout_ms=400))
    try:
        steady = serve(paced_app([0.15] * 8))  # 1.2 s in all, never 0.4 s silent
        resp = await transport.request("POST", f"{steady.url}/x", [], b"{}")
        assert await read(resp) == b"".join(b"data: %d\n\n" % i for i in range(9))

        stalled = serve(paced_app([0.05, 3.0]))  # silent for 3 s after the second chunk
        resp = await transport.request("POST", f"{stalled.url}/x", [], b"{}")
        got: list[bytes] = []
        started = time.monotonic()
        with pytest.raises(UpstreamStreamError):
            try:
                async for chunk in resp.stream():
                    got.append(chunk)
            finally:
                await resp.aclose()
        waited = time.monotonic() - started
        assert b"".join(got) == b"data: 0\n\ndata: 1\n\n"
        assert 0.4 <= waited < 1.5, waited  # cut at the bound after the last chunk, not at the end

        # a JSON body that stalls halfway
        halfway = serve(paced_app([0.05, 3.0], content_type=b"application/json"))
        resp = await transport.request("POST", f"{halfway.url}/x", [], b"{}")
        started = time.monotonic()
        with pytest.raises(UpstreamStreamError):
            await read(resp)
        assert time.monotonic() - started < 1.5
    finally:
        await transport.aclose()


@pytest.mark.parametrize("transport_cls", TRANSPORTS)
async def test_the_idle_timeout_also_bounds_the_wait_for_the_headers(transport_cls: Any, fake_upstream) -> None:
    """The bound holds before the status line too, on a pooled connection as on a new one."""
    transport = transport_cls(UpstreamConfig(idle_timeout_ms=300))
    try:
        first = await transport.request("POST", f"{fake_upstream.url}/v1/chat/completions", [], b"{}")
        await read(first)  # the connection goes back to the pool
        fake_upstream.app.delay_s = 2.0
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            await transport.request("POST", f"{fake_upstream.url}/v1/chat/completions", [], b"{}")
        assert time.monotonic() - started < 1.5
    finally:
        fake_upstream.app.delay_s = 0
        await transport.aclose()


def test_gateway_on_httpx_transport(make_gateway) -> None:
    import openai

    _, server = make_gateway(upstream={"transport": "httpx"})
    client = openai.OpenAI(base_url=f"{server.url}/openai", api_key="sk-x", max_retries=0)
    chunks = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("chunk0 chunk1")
