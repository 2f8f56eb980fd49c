"""An in-process gateway on a canned upstream, and the checks every generated request must pass.

Why in-process: Hypothesis runs hundreds of examples per property; over real sockets that costs
seconds, here it costs milliseconds, and the ASGI messages themselves are what we assert on
(exactly one ``http.response.start``, a body that ends). The upstream is a canned `Transport`
(the protocol in aigw_asgi/transport.py) whose behaviour each example draws: a JSON answer, an
SSE stream, a provider error, or one of the three transport failures.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, settings

from aigw_asgi import Gateway
from aigw_asgi.errors import UpstreamTimeout, UpstreamUnreachable
from aigw_asgi.transport import UpstreamStreamError
from tests.conftest import gateway_config


def _explore_seed() -> object:
    """The ``--hypothesis-seed`` given on the command line, if any (Hypothesis keeps it here)."""
    from hypothesis import core

    return getattr(core, "global_force_seed", None)


def robust(max_examples: int) -> settings:
    """Settings for every robustness property: deterministic unless asked to explore.

    By default the examples are derived from each test itself (``derandomize``) and nothing is
    remembered between runs (``database=None``), so CI never meets a new counterexample by
    chance. ``--hypothesis-seed=N`` turns derandomize off and explores the slice of inputs that
    seed picks; ``AIGW_ROBUST_SCALE=10`` runs ten times the examples (tests/robustness/README.md).
    """
    scale = float(os.environ.get("AIGW_ROBUST_SCALE", "1"))
    return settings(
        max_examples=max(1, int(max_examples * scale)),
        deadline=None,
        derandomize=_explore_seed() is None,
        database=None,
        # One gateway serves all examples of a property (function-scoped fixture, on purpose).
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )


TOKEN = "gw-tok-3f9a1c77e2d84b0aa5c1"
ADMIN_TOKEN = "adm-tok-7b21e0c94d6f43a98e02"
PROVIDER_KEY = "sk-prov-key-5d0c6e8a91b24f3c"
SECRETS = (TOKEN, ADMIN_TOKEN, PROVIDER_KEY)

# SPEC §4: every code the gateway may put in its envelope, with its HTTP status.
KNOWN_CODES = {2001: 400, 2003: 429, 2004: {400, 404, 405}, 2005: 502, 2006: 504, 2007: 413, 2008: 400,
               2009: 401, 2011: 503, 2019: 400, 2040: 400}  # fmt: skip

# What the canned upstream does for one example.
BEHAVIOURS = ("json", "sse", "sse_anthropic", "error_400", "error_429", "error_503", "unreachable", "timeout",
              "broken_body", "broken_sse", "echo_key", "echo_key_gzip")  # fmt: skip
# Upstream error statuses never include 500, so any 500 seen is the gateway's own.
_CREDENTIALS = {"authorization", "x-api-key", "api-key", "x-goog-api-key"}
_ERROR_STATUS = {"error_400": 400, "error_429": 429, "error_503": 503}

CHAT_JSON = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-fake-1",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}
SSE_OPENAI = [
    b'data: {"id":"c","object":"chat.completion.chunk","model":"gpt-fake-1","choices":[{"index":0,"delta":'
    b'{"content":"hi"}}]}\n\n',
    b'data: {"id":"c","object":"chat.completion.chunk","model":"gpt-fake-1","choices":[],"usage":'
    b'{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}\n\n',
    b"data: [DONE]\n\n",
]
SSE_ANTHROPIC = [
    b'event: message_start\ndata: {"type":"message_start","message":{"model":"claude-fake-1","usage":'
    b'{"input_tokens":3,"output_tokens":0}}}\n\n',
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta",'
    b'"text":"hi"}}\n\n',
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":'
    b'{"output_tokens":1}}\n\n',
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
]


class CannedResponse:
    def __init__(self, status: int, content_type: bytes, chunks: list[bytes], *, break_after: int | None = None):
        self.status = status
        self.headers: list[tuple[bytes, bytes]] = [(b"content-type", content_type)]
        if break_after is None and content_type == b"application/json":
            self.headers.append((b"content-length", str(sum(map(len, chunks))).encode()))
        self._chunks = chunks
        self._break_after = break_after

    async def stream(self) -> AsyncIterator[bytes]:
        for i, chunk in enumerate(self._chunks):
            if i == self._break_after:
                raise UpstreamStreamError("ClientPayloadError")
            yield chunk

    def complete(self) -> bool:
        return False

    async def aclose(self) -> None:
        pass


@dataclass
class CannedTransport:
    """A `Transport` that answers every request the way ``behaviour`` says, and records it."""

    behaviour: str = "json"
    # For behaviour "garbage": (status, content type, body chunks) drawn by the test.
    garbage: tuple[int, bytes, list[bytes]] = (200, b"application/json", [b"{"])
    requests: list[tuple[str, str, list[tuple[str, str]], bytes]] = field(default_factory=list)

    async def request(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        first_byte_timeout: float | None = None,
    ) -> CannedResponse:
        self.requests.append((method, url, headers, body))
        _check_like_a_real_client(method, url, headers)
        b = self.behaviour
        if b == "unreachable":
            raise UpstreamUnreachable("Failed to connect to the provider")
        if b == "timeout":
            raise UpstreamTimeout()
        if b == "garbage":
            status, content_type, chunks = self.garbage
            return CannedResponse(status, content_type, list(chunks))
        if b.startswith("echo_key"):  # a provider quoting the credential it refused, split across chunks
            sent = next((v for k, v in headers if k.lower() in _CREDENTIALS), "none")
            err = json.dumps({"error": {"message": f"Incorrect API key provided: {sent}"}}).encode()
            if b == "echo_key_gzip":
                resp = CannedResponse(401, b"application/json", [gzip.compress(err)])
                resp.headers = [(b"content-type", b"application/json"), (b"content-encoding", b"gzip")]
                return resp
            cut = err.index(b"key provided") + 20
            return CannedResponse(401, b"application/json", [err[:cut], err[cut:]])
        if b in _ERROR_STATUS:
            err = json.dumps({"error": {"message": "upstream says no", "type": b}}).encode()
            return CannedResponse(_ERROR_STATUS[b], b"application/json", [err])
        if b == "sse":
            return CannedResponse(200, b"text/event-stream", list(SSE_OPENAI))
        if b == "sse_anthropic":
            return CannedResponse(200, b"text/event-stream", list(SSE_ANTHROPIC))
        if b == "broken_sse":
            return CannedResponse(200, b"text/event-stream", list(SSE_OPENAI), break_after=1)
        data = json.dumps(CHAT_JSON).encode()
        if b == "broken_body":
            return CannedResponse(200, b"application/json", [data[:20], data[20:]], break_after=1)
        return CannedResponse(200, b"application/json", [data])

    async def aclose(self) -> None:
        pass


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _check_like_a_real_client(method: str, url: str, headers: list[tuple[str, str]]) -> None:
    """Refuse what aiohttp/httpx refuse (with the ValueError they raise), so a request the gateway
    should have rejected as a 400 cannot slip through only because this upstream is canned."""
    if not _TOKEN.fullmatch(method):
        raise ValueError(f"invalid method {method!r}")
    if any(c in url for c in "\r\n\x00 ") or not url.isascii():
        raise ValueError(f"invalid URL {url!r}")
    for name, value in headers:
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"invalid header name {name!r}")
        if any(c in value for c in "\r\n\x00"):
            raise ValueError(f"invalid header value for {name!r}")
        value.encode("latin-1")  # UnicodeEncodeError, as http.client and aiohttp would


def robust_config(**overrides: Any) -> Any:
    """Every layer on: cache (memory, ttl 60), a high rate limit, auth with a token, memory logs, a route."""
    sections: dict[str, Any] = {
        "gateway": {
            "authentication": True,
            "tokens": [{"name": "app", "token": TOKEN}],
            "admin_token": ADMIN_TOKEN,
            "max_request_bytes": 64 * 1024,
            # Generated input sends wrong tokens by the hundred from one address: with the token
            # guessing throttle on, every later request would be a 429 and nothing else tested.
            "auth_failures_per_minute": 0,
        },
        "cache": {"ttl": 60, "storage": "memory://"},
        "rate_limit": {"limit": 1_000_000, "period": 60, "storage": "memory://"},
        "logs": {"store": "memory://", "flush_interval_ms": 50},
        "telemetry": {"otel": False},
        "providers": {"openai": {"api_key": PROVIDER_KEY}},
        "routes": {
            "r": {
                "targets": [
                    {"provider": "openai", "model": "gpt-fake-1"},
                    {"provider": "anthropic", "model": "claude-fake-1"},
                ]
            }
        },
    }
    sections.update(overrides)
    # The canned transport never dials: the fake's URL only has to be a valid base.
    return gateway_config("http://upstream.invalid:9", **sections)


@dataclass
class Answer:
    """What the app sent for one request."""

    messages: list[dict[str, Any]]

    @property
    def starts(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == "http.response.start"]

    @property
    def status(self) -> int:
        return self.starts[0]["status"]

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return list(self.starts[0].get("headers", []))

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k.lower() == name), None)

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages if m["type"] == "http.response.body")

    @property
    def complete(self) -> bool:
        bodies = [m for m in self.messages if m["type"] == "http.response.body"]
        return bool(bodies) and not bodies[-1].get("more_body", False)

    def json(self) -> Any:
        return json.loads(self.body)

    def envelope_error(self) -> tuple[int, str] | None:
        """(code, message) when this is a gateway-made error, else None."""
        if self.status < 400:
            return None
        try:
            data = self.json()
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("success") is not False:
            return None
        assert data["result"] == [] and data["messages"] == [], data
        (err,) = data["error"]
        assert isinstance(err["code"], int) and isinstance(err["message"], str) and err["message"], data
        return err["code"], err["message"]


def build_scope(method: str, raw_path: bytes, query: bytes, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """A scope as uvicorn builds it: ``path`` is ``raw_path`` percent-decoded as UTF-8."""
    from urllib.parse import unquote

    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path.decode("ascii")),
        "raw_path": raw_path,
        "root_path": "",
        "query_string": query,
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8787),
    }


def chunked(body: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


class Harness:
    """One gateway on one event loop for a whole property (examples share its caches and logs)."""

    def __init__(self, config: Any = None) -> None:
        self.runner = asyncio.Runner()
        self.transport = CannedTransport()
        self.gateway = Gateway(config if config is not None else robust_config(), transport=self.transport)

    def request(
        self,
        method: str,
        raw_path: bytes,
        *,
        query: bytes = b"",
        headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes = b"",
        chunk_size: int = 0,
        behaviour: str = "json",
        garbage: tuple[int, bytes, list[bytes]] | None = None,
    ) -> Answer:
        self.transport.behaviour = behaviour
        if garbage is not None:
            self.transport.behaviour, self.transport.garbage = "garbage", garbage
        scope = build_scope(method, raw_path, query, headers or [])
        return self.runner.run(self._call(scope, body, chunk_size))

    async def _call(self, scope: dict[str, Any], body: bytes, chunk_size: int) -> Answer:
        parts = list(chunked(body, chunk_size)) if chunk_size and body else [body]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if parts:
                part = parts.pop(0)
                return {"type": "http.request", "body": part, "more_body": bool(parts)}
            await asyncio.sleep(3600)  # a client that stays connected after its body: never ends
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await asyncio.wait_for(self.gateway(scope, receive, send), 10)
        return Answer(sent)

    def close(self) -> list[asyncio.Task[Any]]:
        """Close the gateway; return the tasks still pending on the loop afterwards (should be none)."""

        async def _close() -> list[asyncio.Task[Any]]:
            await self.gateway.aclose()
            await asyncio.sleep(0)
            me = asyncio.current_task()
            return [t for t in asyncio.all_tasks() if t is not me and not t.done()]

        try:
            return self.runner.run(_close())
        finally:
            self.runner.close()


def assert_well_formed(answer: Answer, *, upstream_broke: bool = False, admin: bool = False) -> None:
    """The checks every response must pass, whatever the input."""
    assert len(answer.starts) == 1, answer.messages
    status = answer.status
    assert status != 500, (status, answer.body[:500])
    if not upstream_broke:
        assert answer.complete, answer.messages[-3:]
    if not admin:
        assert answer.header(b"cf-aig-log-id"), answer.headers
    if answer.complete and (err := answer.envelope_error()) is not None:
        code, message = err
        assert code in KNOWN_CODES, (code, message)
        expected = KNOWN_CODES[code]
        assert status in expected if isinstance(expected, set) else status == expected, (status, code, message)
    assert_no_secrets(answer)


def assert_no_secrets(answer: Answer) -> None:
    blob = answer.body + b"\n".join(k + b": " + v for k, v in answer.headers)
    for secret in SECRETS:
        assert secret.encode() not in blob, f"secret {secret[:6]}… leaked: {blob[:400]!r}"
