"""The router driven in-process with a canned upstream, for cases a real server cannot stage."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from aigw_asgi import Gateway
from aigw_asgi.config import config_from_dict
from aigw_asgi.transport import UpstreamStreamError

SECRET = "sk-stored-key-0123456789abcdef"


class BrokenErrorBody:
    """A 401 whose body breaks after its first chunk, which quotes the key it was sent."""

    status = 401

    def __init__(self) -> None:
        self.headers = [(b"content-type", b"application/json"), (b"content-length", b"400")]

    async def stream(self) -> AsyncIterator[bytes]:
        yield b'{"error":{"message":"Incorrect API key provided: ' + SECRET.encode()
        raise UpstreamStreamError("ServerDisconnectedError")

    def complete(self) -> bool:
        return False

    async def aclose(self) -> None:
        return None


class CannedTransport:
    def __init__(self, response: Any) -> None:
        self.response = response

    async def request(self, method: str, url: str, headers: Any, body: bytes, **_: Any) -> Any:
        return self.response

    async def aclose(self) -> None:
        return None


async def call(app: Any, path: str, body: bytes) -> list[dict[str, Any]]:
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def test_a_broken_error_body_that_needed_redaction_is_a_502_not_a_truncated_answer() -> None:
    config = config_from_dict({"providers": {"openai": {"api_key": SECRET}}, "logs": {"store": "memory://"}})
    gateway = Gateway(config, transport=CannedTransport(BrokenErrorBody()))
    sent = await call(gateway, "/openai/chat/completions", b'{"model":"m","messages":[]}')
    await gateway.aclose()
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 502
    body = json.loads(sent[1]["body"])
    assert body["error"][0]["code"] == 2005 and SECRET not in sent[1]["body"].decode()
