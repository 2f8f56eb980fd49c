"""Where cached answers live: one small protocol, a memory LRU and Redis (single node or Cluster).

    CacheStorage            get / set / delete / purge / aclose (and optionally stats, for the dashboard)
    ├── MemoryStorage       memory://  LRU bounded by total bytes; expired entries drop on touch
    └── RedisStorage        redis:// rediss:// redis+cluster://  redis-py asyncio, short timeouts

Failure rule (SPEC §6): cache trouble is a MISS, never an error and never a hang. Every Redis
operation of the request path is bounded (socket timeouts, no retries, and an ``asyncio.timeout``
around it); after a few consecutive failures a short circuit breaker skips Redis entirely for a
moment, so a dead Redis costs nothing per request, and one warning is logged per outage, not one
per request.
``purge`` is an operator action: it has a longer bound and raises, because "purged" must be true.

Entries are stored as a compact binary record (magic, JSON meta, body) — never pickle, so a Redis
shared with anything else cannot make the gateway run code.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..breaker import DEFAULT_THRESHOLD, Breaker, StorageDown
from ..config import CacheConfig
from ..redisclient import redis_client
from ..types import Headers

logger = logging.getLogger("aigw_asgi.cache")

_MAGIC = b"AGC1"
_META_LEN = struct.Struct(">I")
_ENTRY_OVERHEAD = 256  # rough per-entry bookkeeping counted against the memory budget


@dataclass(slots=True)
class CachedResponse:
    """A stored answer: what a hit replays, plus what the logs and purge need."""

    status: int
    headers: Headers  # already filtered by policy.stored_headers
    body: bytes
    provider: str = ""
    stored_at: float = field(default_factory=time.time)
    stream: bool = False
    model: str | None = None
    # Computed once, so a hit does no formatting work.
    content_length: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.content_length = str(len(self.body)).encode()

    @property
    def size(self) -> int:
        return len(self.body) + sum(len(k) + len(v) for k, v in self.headers) + _ENTRY_OVERHEAD

    def encode(self) -> bytes:
        meta = json.dumps(
            {
                "s": self.status,
                "h": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in self.headers],
                "p": self.provider,
                "t": self.stored_at,
                "st": self.stream,
                "m": self.model,
            },
            separators=(",", ":"),
        ).encode()
        return b"".join((_MAGIC, _META_LEN.pack(len(meta)), meta, self.body))

    @classmethod
    def decode(cls, data: bytes) -> CachedResponse | None:
        """The entry, or None for anything that is not one of ours (treated as a miss)."""
        if data[:4] != _MAGIC or len(data) < 8:
            return None
        (size,) = _META_LEN.unpack_from(data, 4)
        try:
            meta = json.loads(data[8 : 8 + size])
            return cls(
                status=int(meta["s"]),
                headers=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in meta["h"]],
                body=data[8 + size :],
                provider=str(meta.get("p", "")),
                stored_at=float(meta.get("t", 0.0)),
                stream=bool(meta.get("st", False)),
                model=meta.get("m"),
            )
        except (ValueError, KeyError, TypeError):
            return None


class CacheStorage(Protocol):
    """What the middleware needs from a storage. Keys are ids from `policy.cache_key`
    (``"{provider}:{hex}"``); request-path methods never raise, ``purge`` may."""

    async def get(self, key: str) -> CachedResponse | None: ...

    async def set(self, key: str, value: CachedResponse, ttl: int) -> None: ...

    async def delete(self, key: str) -> bool: ...

    async def purge(self, provider: str | None = None) -> int: ...

    async def aclose(self) -> None: ...


class MemoryStorage:
    """An in-process LRU bounded by total bytes, with a per-entry cap and per-entry TTL.

    Entries are kept as objects (no encoding), so a hit is a dict lookup. Expired entries are
    dropped when touched or when eviction reaches them; the byte budget bounds the rest.
    """

    def __init__(self, max_bytes: int = 268_435_456, max_entry_bytes: int = 10_485_760) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self._entries: OrderedDict[str, tuple[CachedResponse, float, int]] = OrderedDict()
        self.size = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> CachedResponse | None:
        item = self._entries.get(key)
        if item is None:
            return None
        entry, expires, _ = item
        if expires <= time.monotonic():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    async def set(self, key: str, value: CachedResponse, ttl: int) -> None:
        size = value.size
        if size > self.max_entry_bytes or ttl <= 0:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (value, time.monotonic() + ttl, size)
        self.size += size
        while self.size > self.max_bytes and self._entries:
            oldest = next(iter(self._entries))
            self._drop(oldest)

    async def delete(self, key: str) -> bool:
        return self._drop(key)

    async def purge(self, provider: str | None = None) -> int:
        if provider is None:
            count = len(self._entries)
            self._entries.clear()
            self.size = 0
            return count
        prefix = provider + ":"
        doomed = [k for k in self._entries if k.startswith(prefix)]
        for key in doomed:
            self._drop(key)
        return len(doomed)

    async def aclose(self) -> None:
        return None

    async def stats(self) -> dict[str, int | None]:
        """What the dashboard shows: entries and the bytes they count against ``max_bytes``."""
        return {"entries": len(self._entries), "bytes": self.size}

    def _drop(self, key: str) -> bool:
        item = self._entries.pop(key, None)
        if item is None:
            return False
        self.size -= item[2]
        return True


def _import_redis() -> Any:
    try:
        import redis.asyncio as redis_asyncio
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise ImportError("cache.storage = 'redis://…' needs redis-py: pip install 'aigw-asgi[redis]'") from None
    return redis_asyncio


class RedisStorage:
    """Entries in Redis (or Redis Cluster), shared by every gateway process that points at it.

    Layout: ``{prefix}:cache:{gateway}:{provider}:{sha256}`` holds the encoded entry with a Redis
    TTL. Purging a provider (or everything) is a SCAN over that prefix plus UNLINK — on a cluster
    redis-py scans every primary and splits UNLINK by slot. Every request-path operation touches a
    single key, so no hash tags are needed and entries spread over the whole cluster.
    """

    def __init__(
        self,
        url: str,
        *,
        gateway_id: str = "default",
        key_prefix: str = "aigw",
        timeout_ms: int = 250,
        breaker_s: float = 1.5,
        breaker_failures: int = DEFAULT_THRESHOLD,
        purge_timeout_s: float = 60.0,
        client: Any = None,
    ) -> None:
        self.url = url
        self.prefix = f"{key_prefix}:cache:{gateway_id}:"
        self.timeout = timeout_ms / 1000
        self.breaker_s = breaker_s
        self.purge_timeout = purge_timeout_s
        self._client = client
        self._owns_client = client is None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Request-path calls (get/set) go through the shared breaker: a slow call is one MISS; a
        # Redis in trouble costs ``breaker_failures`` timeouts, then nothing until it is probed
        # again. Purges are operator calls: they raise.
        self.breaker = Breaker(
            what="cache storage",
            logger=logger,
            timeout_s=self.timeout,
            backoff_s=breaker_s,
            threshold=breaker_failures,
            consequence="serving MISS",
        )
        _import_redis()  # fail at construction, naming the extra, not at the first request

    # -- the client, created lazily inside the running loop ---------------------------------------

    def _redis(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or (self._owns_client and self._loop is not loop):
            # redis-py connections belong to the loop that opened them. A host that runs the app
            # in a new loop (a second TestClient, a restarted server) gets a fresh client instead
            # of a cache that silently fails forever; the old one died with its loop.
            self._client = self._make_client()
            self._loop = loop
        return self._client

    def _make_client(self) -> Any:
        # No redis-py retries: the breaker is this storage's retry policy.
        return redis_client(self.url, timeout_s=self.timeout)

    # -- the protocol -------------------------------------------------------------------------

    async def get(self, key: str) -> CachedResponse | None:
        if not self.breaker.available():
            return None
        try:
            data = await self.breaker.call(self._redis().get, self.prefix + key)
        except StorageDown:
            return None
        return CachedResponse.decode(data) if data else None

    async def set(self, key: str, value: CachedResponse, ttl: int) -> None:
        if not self.breaker.available() or ttl <= 0:
            return
        try:
            await self.breaker.call(self._redis().set, self.prefix + key, value.encode(), ex=ttl)
        except StorageDown:
            return

    async def delete(self, key: str) -> bool:
        async with asyncio.timeout(self.purge_timeout):
            return bool(await self._redis().unlink(self.prefix + key))

    async def purge(self, provider: str | None = None) -> int:
        pattern = _escape_glob(self.prefix + (f"{provider}:" if provider else "")) + "*"
        client = self._redis()
        count = 0
        batch: list[bytes] = []
        async with asyncio.timeout(self.purge_timeout):
            async for key in client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    count += await client.unlink(*batch)
                    batch.clear()
            if batch:
                count += await client.unlink(*batch)
        return count

    async def stats(self) -> dict[str, int | None]:
        """Entries counted with SCAN (bounded like a purge); their bytes Redis cannot tell cheaply."""
        count = 0
        async with asyncio.timeout(self.purge_timeout):
            async for _ in self._redis().scan_iter(match=_escape_glob(self.prefix) + "*", count=1000):
                count += 1
        return {"entries": count, "bytes": None}

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._owns_client and self._loop is asyncio.get_running_loop():
            await client.aclose()


def _escape_glob(text: str) -> str:
    """A literal for Redis MATCH patterns (a gateway id or provider could contain ``*`` or ``[``)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def storage_from_config(config: CacheConfig, gateway_id: str = "default") -> CacheStorage:
    """The storage ``config.storage`` names (validated by config/validate.py)."""
    url = config.storage
    if url.startswith("memory://"):
        return MemoryStorage(config.max_bytes, config.max_entry_bytes)
    return RedisStorage(url, gateway_id=gateway_id, key_prefix=config.key_prefix, timeout_ms=config.timeout_ms)
