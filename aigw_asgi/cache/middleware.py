"""CacheMiddleware: answer repeated identical requests from storage (SPEC §6).

In the Gateway it sits between auth and the rate limit, so a hit is authenticated and logged but
never counted. Around any other ASGI app it works alone: it reads the provider from the path
(``/{provider}/{rest}``), keys the request (cache/policy.py), and either replays a stored answer
or lets the request through while recording the answer as it is relayed.

A stream is relayed unbuffered — the recording keeps references to the chunks already sent — and
stored only once it is known to be whole: the router saw its terminal event with no error
(``ctx.stream_complete``), and it stayed under ``max_entry_bytes``. A hit replays the same bytes
with the same content type.

Single-flight: identical misses arriving while one is in flight wait for that one's answer instead
of calling the provider again; if it fails or is not cacheable, each waiter makes its own call.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import TYPE_CHECKING, Any

from .._asgi import ClientDisconnected, read_body, replay_receive
from ..config import CacheConfig
from ..context import RequestContext, ensure_context
from ..errors import GatewayError, send_error
from ..providers.registry import relative_path
from ..types import ASGIApp, Message, Receive, Scope, Send
from . import policy
from .storage import CachedResponse, CacheStorage, storage_from_config

if TYPE_CHECKING:
    from ..providers.registry import ProviderRegistry

logger = logging.getLogger("aigw_asgi.cache")

_MISS_HEADER = [(b"cf-aig-cache-status", b"MISS")]
CANONICAL_MEMO = 4096
"""JSON bodies whose key `CacheMiddleware._key` remembers by their exact bytes (~200 bytes each)."""
_HEADS = 256  # (route, credential, token) combinations whose hash state is kept


class CacheMiddleware:
    """``CacheMiddleware(app, CacheConfig(ttl=300))`` — or ``storage=`` any `CacheStorage`."""

    def __init__(
        self,
        app: ASGIApp,
        config: CacheConfig | None = None,
        *,
        gateway_id: str = "default",
        storage: CacheStorage | str | None = None,
        providers: ProviderRegistry | None = None,
        max_request_bytes: int = 26_214_400,
        log_body_bytes: int = 65_536,
        miss_header: bool = True,
    ) -> None:
        """``miss_header``: add ``cf-aig-cache-status: MISS`` to answers of the inner app that
        lack it (any ASGI app). The `Gateway` turns it off: every answer below it carries the
        context's headers already, and the check would wrap every message of every stream."""
        self.app = app
        self.miss_header = miss_header
        self.config = config or CacheConfig()
        self.gateway_id = gateway_id
        if isinstance(storage, str):
            self.config = _with_storage(self.config, storage)
            storage = None
        # `is None`, not `or`: an empty MemoryStorage has len() 0 and is falsy.
        self.storage: CacheStorage = storage if storage is not None else storage_from_config(self.config, gateway_id)
        self.providers = providers
        self.max_request_bytes = max_request_bytes
        self.log_body_bytes = log_body_bytes
        self.max_entry_bytes = self.config.max_entry_bytes
        self.cache_streams = self.config.cache_streams
        # Single-flight: entry id -> the future the in-flight leader resolves with its entry or None.
        self._inflight: dict[str, asyncio.Future[CachedResponse | None]] = {}
        # A JSON body's exact-bytes digest -> its entry id (`_key`); the hash states of the parts
        # before the body, by those parts (`_exact_key`).
        self._canonical: dict[bytes, str] = {}
        self._heads: dict[tuple[str, str, str, bytes, bytes, str | None], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # websocket and lifespan: nothing to cache
            await self.app(scope, receive, send)
            return
        ctx = ensure_context(scope, self.gateway_id)
        route = policy.split_path(ctx.path)
        try:
            decision = policy.decide(ctx.method, ctx.options, self.config.ttl) if route else policy.BYPASS
        except GatewayError as exc:  # an invalid cf-aig-* header: 400 code 2004, naming it
            await self._error(ctx, send, exc)
            return
        if route is None or not decision.ttl:
            ctx.cache_status = "BYPASS"
            await self.app(scope, receive, _with_miss_header(send) if self.miss_header else send)
            return

        try:
            body = await read_body(ctx, receive, self.max_request_bytes)
        except GatewayError as exc:
            await self._error(ctx, send, exc)
            return
        except ClientDisconnected:
            ctx.client_gone()
            return
        provider, rest = route
        known = self.providers.get(provider) if self.providers is not None else None
        key = ctx.cache_key = self._key(
            ctx, provider, relative_path(known, rest) if known is not None else rest, scope.get("query_string", b"")
        )
        if not decision.read:  # cf-aig-skip-cache: fresh answer, still stored
            ctx.cache_status = "MISS"
            await self._fetch(ctx, scope, replay_receive(body, receive), send, key, provider, decision.ttl, None)
            return

        try:
            entry = await self.storage.get(key)
        except Exception:  # a custom storage that breaks the protocol: still a MISS, never an error
            logger.warning("cache storage get failed", exc_info=True)
            entry = None
        if entry is not None:
            await self._replay(ctx, send, entry, provider, rest)
            return
        ctx.cache_status = "MISS"
        leader = self._inflight.get(key)
        if leader is not None:
            # Shielded: a waiter that goes away must not cancel the leader's result for the others.
            entry = await asyncio.shield(leader)
            if entry is not None:
                await self._replay(ctx, send, entry, provider, rest)
                return
            await self._fetch(ctx, scope, replay_receive(body, receive), send, key, provider, decision.ttl, None)
            return
        future: asyncio.Future[CachedResponse | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            await self._fetch(ctx, scope, replay_receive(body, receive), send, key, provider, decision.ttl, future)
        finally:
            if not future.done():
                future.set_result(None)
            if self._inflight.get(key) is future:
                del self._inflight[key]

    def _key(self, ctx: RequestContext, provider: str, path: str, query: bytes) -> str:
        """The entry id (`policy.cache_key`); a JSON body seen before in the same bytes skips its parse.

        The key reads the body canonically: parsed, then serialised with sorted keys, which cost a
        tenth of a hit under load. A client that asks again mostly sends the same bytes, so each
        JSON body's key is remembered under a key of its exact bytes with every other part the
        same (`_exact_key`): a JSON body's canonical form depends on its bytes alone. A custom key and
        a /compat request (keyed by its client's body too) take the usual way.
        """
        body = ctx.body or b""
        credential = policy.credential_hash(ctx.headers)
        custom_key = ctx.options.cache_key
        json_like = body[:1] in (b"{", b"[")
        exact: bytes | None = None
        if json_like and custom_key is None and ctx.cache_vary is None:
            exact = self._exact_key(ctx, provider, path, query, credential, body)
            remembered = self._canonical.get(exact)
            if remembered is not None:
                return remembered
        parsed = ctx.json() if json_like else None
        key = policy.cache_key(
            gateway_id=self.gateway_id,
            provider=provider,
            method=ctx.method,
            path=path,
            query=query,
            credential=credential,
            # /compat: the body sent is a translation; the client's own body keys it too, so a
            # field a translation leaves out (``user``) never merges two requests' entries.
            body=policy.canonical_body(body, parsed, ctx.header(b"content-type"))
            + (b"\x00" + policy.canonical_body(b"", ctx.cache_vary) if ctx.cache_vary is not None else b""),
            stream=policy.stream_flag(parsed),
            custom_key=custom_key,
            token=ctx.token_name,
            share_across_tokens=self.config.share_across_tokens,
        )
        if exact is not None and isinstance(parsed, dict | list):  # bytes that are not JSON: never
            if len(self._canonical) >= CANONICAL_MEMO:
                self._canonical.clear()  # bounded; the bodies still asked for are parsed once more
            self._canonical[exact] = key
        return key

    def _exact_key(
        self, ctx: RequestContext, provider: str, path: str, query: bytes, credential: bytes, body: bytes
    ) -> bytes:
        """SHA-256 over `policy.exact_head` and the body's exact bytes: `_canonical`'s key.

        The parts before the body repeat from request to request (one route, one credential), so
        the hash's state after them is kept (`_heads`, bounded) and copied for each body.
        """
        tenant = None if self.config.share_across_tokens else ctx.token_name
        head = (provider, ctx.method, path, query, credential, tenant)
        state = self._heads.get(head)
        if state is None:
            if len(self._heads) >= _HEADS:
                self._heads.clear()
            state = self._heads[head] = hashlib.sha256(
                policy.exact_head(
                    gateway_id=self.gateway_id,
                    provider=provider,
                    method=ctx.method,
                    path=path,
                    query=query,
                    credential=credential,
                    tenant=tenant,
                )
            )
        digest = state.copy()
        digest.update(body)
        return digest.digest()

    # -- miss: relay and record -------------------------------------------------------------------

    async def _fetch(
        self,
        ctx: RequestContext,
        scope: Scope,
        receive: Receive,
        send: Send,
        key: str,
        provider: str,
        ttl: int,
        future: asyncio.Future[CachedResponse | None] | None,
    ) -> None:
        """Run the inner app, relaying every message at once and keeping references to the body."""
        status = 0
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []
        size = 0
        recording = False
        finished = False
        streamed = False

        async def record(message: Message) -> None:
            nonlocal status, headers, size, recording, finished, streamed
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers") or []
                streamed = policy.is_stream(headers)
                recording = policy.cacheable_status(status) and (self.cache_streams or not streamed)
                message["headers"] = _ensure_miss(headers)
            elif message["type"] == "http.response.body":
                if recording:
                    chunk = message.get("body", b"")
                    if chunk:
                        size += len(chunk)
                        if size > self.max_entry_bytes:  # too big to keep: stop, free what we had
                            recording = False
                            chunks.clear()
                        else:
                            chunks.append(chunk)
                if not message.get("more_body", False):
                    finished = True
            await send(message)

        await self.app(scope, receive, record)

        if not (recording and finished) or ctx.error is not None:
            return
        if streamed and not ctx.stream_complete:  # cut, errored, or an app that cannot tell: never store
            return
        entry = CachedResponse(
            status=status,
            headers=policy.stored_headers(headers),
            body=chunks[0] if len(chunks) == 1 else b"".join(chunks),
            provider=provider,
            stream=streamed,
            model=ctx.response_model or ctx.model,  # a hit's row names the model that answered
        )
        if future is not None and not future.done():
            future.set_result(entry)  # waiters replay now; the store write below is not their concern
        try:
            await self.storage.set(key, entry, ttl)
        except Exception:  # the answer is already sent; a failed store only costs a later MISS
            logger.warning("cache storage set failed", exc_info=True)

    # -- hit: replay --------------------------------------------------------------------------

    async def _replay(self, ctx: RequestContext, send: Send, entry: CachedResponse, provider: str, rest: str) -> None:
        ctx.cache_status = "HIT"
        ctx.provider = provider
        ctx.endpoint = rest
        ctx.model = ctx.model or entry.model or self._model(provider, rest, ctx)
        ctx.answered(entry.status)
        ctx.stream = entry.stream
        ctx.response_body = entry.body[: self.log_body_bytes]  # a full slice of bytes is not a copy
        age = str(max(0, int(time.time() - entry.stored_at))).encode()
        headers = [
            *entry.headers,
            (b"content-length", entry.content_length),
            (b"age", age),
            *ctx.response_headers(),
        ]
        ctx.first_byte = time.perf_counter()
        try:
            await send({"type": "http.response.start", "status": entry.status, "headers": headers})
            await send({"type": "http.response.body", "body": entry.body})
            ctx.stream_complete = entry.stream  # the whole stored stream reached the server
        except OSError:  # ASGI >= 2.4 servers raise once the client is gone
            ctx.client_gone()
        ctx.ended = time.perf_counter()

    def _model(self, provider: str, rest: str, ctx: RequestContext) -> str | None:
        parsed = ctx.json() if (ctx.body or b"")[:1] in (b"{", b"[") else None
        if isinstance(parsed, dict) and isinstance(parsed.get("model"), str):
            return str(parsed["model"])
        if self.providers is None:
            return None
        from ..providers.registry import join_url, model_from

        spec = self.providers.get(provider)
        if spec is None:
            return None
        try:
            _, params = join_url(spec, rest)
        except ValueError:
            return None
        return model_from(spec, rest, params, parsed)

    async def _error(self, ctx: RequestContext, send: Send, exc: GatewayError) -> None:
        ctx.fail(exc)
        await send_error(send, exc, ctx.response_headers())

    # -- operator API -------------------------------------------------------------------------

    async def purge(self, *, key: str | None = None, provider: str | None = None) -> int:
        """Delete one entry (``key`` = the id logs show, ``"openai:3fa…"``), a provider's, or all.

        Returns how many entries went. Raises when the storage cannot be reached: a purge that
        silently did nothing would leave stale answers being served.
        """
        if key is not None:
            return int(await self.storage.delete(key))
        return await self.storage.purge(provider)

    async def aclose(self) -> None:
        await self.storage.aclose()


def _ensure_miss(headers: Any) -> Any:
    """Cloudflare sends ``cf-aig-cache-status: MISS`` even when caching is off; so do we.

    Behind the router the header is already there and nothing is copied.
    """
    for name, _ in headers:
        if name == b"cf-aig-cache-status":
            return headers
    return [*headers, *_MISS_HEADER]


def _with_miss_header(send: Send) -> Send:
    async def send_with_header(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = _ensure_miss(message.get("headers") or [])
        await send(message)

    return send_with_header


def _with_storage(config: CacheConfig, url: str) -> CacheConfig:
    from dataclasses import replace

    return replace(config, storage=url)
