"""ProviderRouter: provider-native pass-through, ``ANY /{provider}/{path}`` (SPEC §2).

The innermost app of the gateway. Per request it: resolves the provider (data, see
providers/registry.py), refuses paths that could escape the upstream base, reads the body once
with a cap, builds the upstream headers (no hop-by-hop, no ``cf-aig-*``, no gateway token;
a stored BYOK key only when the client sent no credential), retries per the retry policy, and
relays the answer chunk by chunk as it arrives, feeding a usage tracker on the way.

Nothing is buffered on the way back except what usage accounting needs: a non-streamed JSON
answer is kept (to read ``usage``) while it is forwarded, a stream is parsed event by event.
"""

from __future__ import annotations

import asyncio
import functools
import time
import zlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from . import _json, multipart
from ._asgi import ClientDisconnected, ClientWatch, lifespan_loop, read_body
from .config import Config
from .context import ErrorType, RequestContext, ensure_context
from .errors import (
    GatewayError,
    InvalidProvider,
    InvalidRequest,
    NotFound,
    UpstreamError,
    UpstreamUnreachable,
    send_error,
)
from .headers import HOP_BY_HOP, header
from .options import RequestOptions
from .providers.paths import check_path, quote_path
from .providers.registry import Provider, ProviderRegistry, dialect, join_url, model_from
from .providers.stream import StreamTracker
from .providers.stream_errors import error_event
from .providers.usage import usage_from_json
from .realtime import RealtimeProxy
from .routing.retry import RetryPolicy, next_retry_delay, retry_policy
from .transport import Transport, UpstreamResponse, UpstreamStreamError, make_transport
from .types import Receive, Scope, Send

# Never forwarded upstream: hop-by-hop (RFC 9110 §7.6.1), what the transport recomputes, and
# the gateway's own headers (cf-aig-* are filtered by prefix).
_DROP_REQUEST = HOP_BY_HOP | {
    b"host",
    b"proxy-authorization",
    b"content-length",
    b"expect",
    b"forwarded",
    b"x-forwarded-for",
    b"x-forwarded-host",
    b"x-forwarded-proto",
    b"x-real-ip",
}
# date/server: the server hosting the gateway writes its own; two of each confuse clients.
_DROP_RESPONSE = HOP_BY_HOP | {b"date", b"server"}
_MAX_USAGE_BODY = 16 * 1024 * 1024  # a JSON answer larger than this is relayed but not parsed for usage


class ProviderRouter:
    """The ASGI app at the centre of the gateway (usable alone, without any middleware)."""

    def __init__(
        self,
        config: Config | None = None,
        *,
        providers: ProviderRegistry | None = None,
        transport: Transport | None = None,
    ):
        self.config = config or Config()
        self.providers = providers or ProviderRegistry.from_config(self.config)
        self.transport: Transport = transport or make_transport(self.config.upstream)
        self.gateway_id = self.config.gateway.id
        self.max_body = self.config.gateway.max_request_bytes
        self.log_body_cap = self.config.logs.max_body_bytes
        self._compression = self.config.upstream.compression
        self._drop_request = _DROP_REQUEST if self._compression else _DROP_REQUEST | {b"accept-encoding"}
        # The policy of a request that sets no retry header, built once.
        self._default_policy = retry_policy(RequestOptions(), self.config.retries)
        self.realtime = RealtimeProxy(self.config, providers=self.providers)

    async def aclose(self) -> None:
        await self.transport.aclose()
        await self.realtime.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.handle(scope, receive, send)
        elif kind == "websocket":
            await self.realtime(scope, receive, send)  # WS /{provider}/{path}: aigw_asgi/realtime/
        elif kind == "lifespan":
            await lifespan_loop(receive, send, None, self.aclose)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = ensure_context(scope, self.gateway_id)
        try:
            await self._proxy(ctx, scope, receive, send)
        except GatewayError as exc:
            # Raised only before the response started: once relaying, failures are reported
            # inside the stream (or by dropping the connection), never as a second response.
            ctx.fail(exc)
            await send_error(send, exc, ctx.response_headers())
        except ClientDisconnected:
            ctx.client_gone()
        finally:
            if ctx.ended is None:
                ctx.ended = time.perf_counter()

    # -- the request ----------------------------------------------------------------------------

    async def _proxy(self, ctx: RequestContext, scope: Scope, receive: Receive, send: Send) -> None:
        _, _, rest = ctx.path.partition("/")
        slug, _, path = rest.partition("/")
        if not slug:
            raise NotFound("Not found: use /{provider}/{path}")
        provider = self.providers.get(slug)
        if provider is None:
            raise InvalidProvider(self.providers.refusal(slug))
        ctx.provider = slug
        check_path(scope, path)
        try:
            url, params = join_url(provider, quote_path(path))
        except ValueError as exc:
            raise InvalidRequest(f"Invalid path: {exc}") from None
        provider = dialect(provider, path)  # e.g. Ollama's /v1/… speaks OpenAI's wire format
        query: bytes = scope.get("query_string", b"")
        if query:
            url = f"{url}?{query.decode('latin-1')}"
        ctx.endpoint = path

        body = await read_body(ctx, receive, self.max_body)
        parsed = ctx.json() if body[:1] in (b"{", b"[") or body[:3] == b"\xef\xbb\xbf" else None
        if parsed is None and body:  # an upload (audio/transcriptions) names its model in a form field
            form_model = multipart.text_field(body, ctx.header(b"content-type"), "model")
            parsed = {"model": form_model} if form_model else None
        ctx.model = ctx.model or model_from(provider, path, params, parsed)
        options = ctx.options
        strip_usage = False
        # Chat Completions only: the Responses API refuses stream_options.include_usage.
        if (
            provider.stream_usage
            and path.endswith("completions")
            and isinstance(parsed, dict)
            and parsed.get("stream") is True
        ):
            stream_options = parsed.get("stream_options")
            if not (isinstance(stream_options, dict) and stream_options.get("include_usage")):
                # Ask for the usage chunk so streams are accounted; hide it again from a client
                # that did not ask for it.
                patched = dict(parsed)
                patched["stream_options"] = {**(stream_options or {}), "include_usage": True}
                body = _json.dumps(patched)
                strip_usage = True

        headers, injected_key = self._upstream_headers(ctx, provider, query, options.byok_alias)
        policy = (
            self._default_policy
            if options.max_attempts is None
            and options.retry_delay_ms is None
            and options.backoff is None
            and options.request_timeout_ms is None
            else retry_policy(options, self.config.retries)
        )
        # Set only once a call is about to leave: telemetry makes upstream (client) spans from it.
        ctx.upstream_host, ctx.upstream_port = _host_port(url.partition("?")[0])
        # From the moment the request leaves until the answer is relayed, a client that hangs up
        # cancels the call: before the first byte (the provider is still generating, and billing),
        # between retries, and mid-answer. One watcher per request, not one per stream.
        watch = ClientWatch(receive)
        try:
            resp = await self._call(ctx, url, headers, body, policy)
            if injected_key is not None and resp.status >= 400:
                # Some providers quote the key they refused in the error body. The client never
                # had that key (the gateway injected it), so it must not learn it from us.
                resp = await _BufferedResponse.redacted(resp, injected_key.encode())
            await self._relay(ctx, provider, resp, send, strip_usage, watch)
        except asyncio.CancelledError:
            if not watch.release():
                raise
            ctx.client_gone()
        finally:
            watch.stop()

    async def _call(
        self, ctx: RequestContext, url: str, headers: list[tuple[str, str]], body: bytes, policy: RetryPolicy
    ) -> UpstreamResponse:
        """The upstream answer, after the retries the policy allows (each one a row of its own)."""
        while True:
            try:
                resp = await self.transport.request(ctx.method, url, headers, body, first_byte_timeout=policy.timeout)
            except UpstreamError as exc:
                delay = next_retry_delay(policy, ctx.attempt)
                kind = ErrorType.TIMEOUT if exc.status == 504 else ErrorType.CONNECT_ERROR
                if delay is None:
                    ctx.fail(exc, kind)
                    raise
                ctx.next_attempt(status_code=exc.status, error=exc.message, error_type=kind)
                await asyncio.sleep(delay)
                continue
            delay = next_retry_delay(policy, ctx.attempt, resp.status, header(resp.headers, b"retry-after"))
            if delay is None:
                return resp
            error_body = await _drain(resp, self.log_body_cap)
            ctx.response_body = error_body
            ctx.next_attempt(status_code=resp.status, error=f"upstream {resp.status}", error_type=str(resp.status))
            await asyncio.sleep(delay)

    def _upstream_headers(
        self, ctx: RequestContext, provider: Provider, query: bytes, alias: str | None
    ) -> tuple[list[tuple[str, str]], str | None]:
        """The headers to send upstream, and the stored key injected into them (if any)."""
        gateway_auth = f"Bearer {ctx.gateway_token}".encode() if ctx.gateway_token else None
        auth_header = provider.auth_header.encode()
        # Dropped: hop-by-hop and the like, plus Accept-Encoding when we ask for identity bodies.
        drop = self._drop_request
        has_credential = False
        injected: str | None = None
        out: list[tuple[str, str]] = []
        append = out.append
        for key, value in ctx.headers:
            if key in drop or key.startswith(b"cf-aig-"):
                continue
            if key == b"authorization" or key == auth_header:
                if value == gateway_auth:
                    continue  # the gateway token put in the provider slot is ours, not the provider's
                # Any provider accepts a bearer in Authorization too (anthropic SDK >= 2 sends
                # its key there): the client brought its own credential, so inject none.
                has_credential = True
            append((key.decode("latin-1"), value.decode("latin-1")))
        if not has_credential and provider.query_key:
            has_credential = any(part.startswith(provider.query_key.encode() + b"=") for part in query.split(b"&"))
        if not has_credential:
            stored = self.providers.stored_key(provider, alias)
            if stored is not None:
                injected = stored.key
                out.append((provider.auth_header, provider.credential_value(stored.key)))
        provider.add_default_headers(out)
        if not self._compression:
            out.append(("accept-encoding", "identity"))
        return out, injected

    # -- the answer -----------------------------------------------------------------------------

    async def _relay(
        self,
        ctx: RequestContext,
        provider: Provider,
        resp: UpstreamResponse,
        send: Send,
        strip_usage: bool,
        watch: ClientWatch,
    ) -> None:
        ctx.answered(resp.status)
        headers = [(k, v) for k, v in resp.headers if k not in _DROP_RESPONSE]
        content_type = (header(headers, b"content-type") or b"").lower()
        encoding = header(headers, b"content-encoding")
        streamed = content_type.startswith((b"text/event-stream", b"application/x-ndjson"))
        ctx.stream = streamed
        tracker: StreamTracker | None = None
        decoder: Any = None
        if streamed:
            tracker = StreamTracker(
                provider.format,
                strip_usage_chunk=strip_usage and encoding is None,
                ndjson=content_type.startswith(b"application/x-ndjson"),
            )
            if encoding is not None:
                decoder = _decoder(encoding)
            if strip_usage and encoding is None:
                headers = [h for h in headers if h[0] != b"content-length"]
        headers.extend(ctx.response_headers())
        captured: list[bytes] = []
        captured_size = 0
        cap = self.log_body_cap if streamed else _MAX_USAGE_BODY
        last = b""  # the final chunk, when the upstream had finished by the time it was read
        try:
            await send({"type": "http.response.start", "status": resp.status, "headers": headers})
            try:
                async for chunk in resp.stream():
                    if ctx.first_byte is None:
                        ctx.first_byte = time.perf_counter()
                    if captured_size < cap:
                        captured.append(chunk)
                        captured_size += len(chunk)
                    if tracker is not None:
                        if decoder is None:
                            chunk = tracker.feed(chunk)
                        else:
                            tracker.feed(decoder.decompress(chunk))
                    if resp.complete():
                        # Nothing more will come: this chunk ends the body (one message through
                        # every layer and one write to the client fewer than a separate end).
                        last = chunk
                        break
                    if chunk:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except UpstreamStreamError as exc:
                ctx.broke(f"upstream stream broke ({exc})", ErrorType.STREAM_ERROR)
                if tracker is None:
                    raise  # no way to say it inside a JSON body: abort the connection
                message = "upstream connection lost mid-stream"
                if decoder is None:
                    # finish() flushes a half-received event; error_event() then closes it first
                    tail = tracker.finish() + tracker.error_event(message)
                else:
                    tail = error_event(provider.format, message)
                await send({"type": "http.response.body", "body": tail, "more_body": False})
                watch.stop()
                return
            except asyncio.CancelledError:
                # The client left. Once the stream's terminal event was relayed it has the whole
                # answer -- the openai SDK hangs up at [DONE], litellm at Anthropic's message_stop,
                # while the provider closes its side a few ms later: the request is complete (a
                # success, cached); only the provider's close is not waited for.
                if tracker is None or not tracker.completed or not watch.release():
                    raise
            tail = tracker.finish() if tracker is not None and decoder is None else b""
            # After a client that left at the terminal event, the server drops this message; the
            # layers above (the cache's recording) still see the answer end.
            await send({"type": "http.response.body", "body": last + tail if tail else last, "more_body": False})
            watch.stop()
        except OSError:
            # ASGI >= 2.4 servers raise OSError from send() once the client is gone; after the
            # terminal event that is the client hanging up on a complete answer.
            if tracker is None or not tracker.completed:
                ctx.client_gone()
        finally:
            await resp.aclose()
            ctx.ended = time.perf_counter()
            body = captured[0] if len(captured) == 1 else b"".join(captured)
            ctx.response_body = body[: self.log_body_cap]
            if tracker is not None:
                ctx.usage.merge(tracker.usage)
                ctx.response_model = tracker.model
                ctx.stream_complete = tracker.completed and tracker.error is None and ctx.error is None
                if tracker.error:
                    ctx.broke(tracker.error, ErrorType.STREAM_ERROR)
            elif resp.status < 300 and captured_size < _MAX_USAGE_BODY and content_type.startswith(b"application/json"):
                if encoding is not None:
                    body = _decompress(encoding, body)
                model, usage = usage_from_json(provider.format, body)
                ctx.usage.merge(usage)
                ctx.response_model = model


@functools.lru_cache(maxsize=4096)
def _host_port(url: str) -> tuple[str | None, int]:
    split = urlsplit(url)
    return split.hostname, split.port or (443 if split.scheme == "https" else 80)


class _BufferedResponse:
    """An upstream answer read into memory: used only to redact small error answers."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @classmethod
    async def redacted(cls, resp: UpstreamResponse, secret: bytes) -> _BufferedResponse:
        body = await _drain(resp, _MAX_USAGE_BODY, whole=True)
        headers = list(resp.headers)
        encoding = header(headers, b"content-encoding")
        if encoding is not None:
            body = _decompress(encoding, body)
        body = body.replace(secret, b"[REDACTED]")
        drop = (b"content-length", b"content-encoding")
        headers = [h for h in headers if h[0] not in drop] + [(b"content-length", str(len(body)).encode())]
        return cls(resp.status, headers, body)

    async def stream(self) -> AsyncIterator[bytes]:
        yield self.body

    def complete(self) -> bool:
        return False  # the one chunk then the end: a buffered error answer is no hot path

    async def aclose(self) -> None:
        return None


async def _drain(resp: UpstreamResponse, cap: int, *, whole: bool = False) -> bytes:
    """Read (and keep up to ``cap`` bytes of) an error answer.

    ``whole``: the body will be relayed, so a break must not pass for the end of the body
    (`UpstreamUnreachable`, answered as 502 before anything was sent); a body that is only kept
    for the logs of a retried attempt may be cut short.
    """
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in resp.stream():
            if size < cap:
                chunks.append(chunk)
                size += len(chunk)
    except UpstreamStreamError:
        if whole:
            raise UpstreamUnreachable("Failed to get response from provider (connection lost mid-body)") from None
    finally:
        await resp.aclose()
    return b"".join(chunks)[:cap]


def _decoder(encoding: bytes) -> Any:
    if encoding.strip().lower() in (b"gzip", b"x-gzip", b"deflate"):
        return zlib.decompressobj(47)  # 47: gzip or zlib header, auto-detected
    return _NullDecoder()


class _NullDecoder:
    """Unknown encodings (br, zstd): forward untouched, account nothing."""

    def decompress(self, data: bytes) -> bytes:
        return b""


def _decompress(encoding: bytes, body: bytes) -> bytes:
    try:
        return _decoder(encoding).decompress(body)
    except zlib.error:
        return b""
