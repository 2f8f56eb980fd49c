"""`mount()` and the Gateway's own lifespan, driven message by message."""

from __future__ import annotations

from typing import Any

import pytest

from aigw_asgi import Gateway, mount


class Recorder:
    """A host app that records what reaches it and speaks lifespan."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        elif scope["type"] == "http":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})


class ClosingGateway(Gateway):
    closed = 0

    async def aclose(self) -> None:
        type(self).closed += 1
        await super().aclose()


async def call(app: Any, path: str, root_path: str = "") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "root_path": root_path,
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 1),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent, scope


async def test_prefix_goes_to_the_gateway_the_rest_to_the_host() -> None:
    host = Recorder()
    app = mount(host, "/ai/", Gateway())
    sent, _ = await call(app, "/ai/admin/health")
    assert sent[0]["status"] == 200  # answered by the gateway's admin API
    sent, _ = await call(app, "/aix/whatever")
    assert sent[0]["status"] == 204 and host.scopes[-1]["path"] == "/aix/whatever"
    sent, _ = await call(app, "/outer/ai/admin/health", root_path="/outer")  # mounted below another mount
    assert sent[0]["status"] == 200


async def test_gateway_sees_the_prefix_in_root_path() -> None:
    seen: list[dict[str, Any]] = []

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)
        await Recorder()(scope, receive, send)

    await call(mount(Recorder(), "/ai", inner), "/ai/openai/x")
    assert seen[0]["path"] == "/ai/openai/x" and seen[0]["root_path"] == "/ai"


def test_root_prefix_is_refused() -> None:
    with pytest.raises(ValueError):
        mount(Recorder(), "/", Gateway())


async def lifespan(app: Any) -> list[str]:
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    return sent


async def test_host_shutdown_closes_the_gateway() -> None:
    ClosingGateway.closed = 0
    sent = await lifespan(mount(Recorder(), "/ai", ClosingGateway()))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert ClosingGateway.closed == 1


async def test_gateway_answers_lifespan_itself_and_lifespan_context_closes() -> None:
    ClosingGateway.closed = 0
    assert await lifespan(ClosingGateway()) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert ClosingGateway.closed == 1
    gateway = ClosingGateway()
    async with gateway.lifespan() as entered:
        assert entered is gateway
    assert ClosingGateway.closed == 2


async def test_mount_path_config_for_a_standalone_gateway() -> None:
    from aigw_asgi.config import config_from_dict

    gateway = Gateway(config_from_dict({"gateway": {"mount_path": "/gw"}, "logs": {"store": "memory://"}}))
    sent, _ = await call(gateway, "/gw/admin/health")
    assert sent[0]["status"] == 200
    sent, _ = await call(gateway, "/elsewhere")
    assert sent[0]["status"] == 404
    await gateway.aclose()
