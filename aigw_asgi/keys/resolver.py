"""KeyResolver: this instance's view of the keys, never more than ``refresh_s`` behind the store.

Why a whole-table snapshot rather than a lookup per token: a presented key is then checked
without any I/O (one SHA-256, one dict lookup, one constant-time compare), and a flood of made-up
tokens costs the store nothing. Staleness is bounded instead: a request that finds the snapshot
older than ``refresh_s`` reads the store's ``version`` (one cheap read, shared by every request
waiting at that moment) and reloads the table only when it changed. A snapshot counts as taken
when its read *started*, so a request whose check begins ``refresh_s`` after a revocation was
committed, on any instance, sees it (SPEC §14 asks for 2 s; the default is 0.5 s).

If the store cannot be reached, the last snapshot keeps serving (one warning per outage, through
the shared `Breaker`): a revocation needs the store anyway, so nothing revoked while it is down
can be missed. With no snapshot at all (the store is down since start) a key cannot be checked
and `StorageDown` reaches the caller (auth answers 503 code 2011).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Callable

from ..breaker import Breaker, StorageDown
from .model import KEY_PREFIX, GatewayKey
from .store import KeyStore

logger = logging.getLogger("aigw_asgi.keys")

__all__ = ["KeyResolver", "StorageDown"]

_MARK = KEY_PREFIX.encode()


class KeyResolver:
    """``await resolver.lookup(token)`` -> the `GatewayKey` it is (any status), or ``None``."""

    def __init__(
        self,
        store: KeyStore,
        *,
        refresh_s: float = 0.5,
        timeout_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._monotonic = monotonic
        self.breaker = Breaker(
            what="key store",
            logger=logger,
            timeout_s=timeout_s,
            consequence="checking keys against the last copy read",
        )
        self._by_digest: dict[bytes, GatewayKey] = {}
        self._by_id: dict[str, GatewayKey] = {}
        self._version: int | None = None
        self._checked = float("-inf")
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    # -- reading --------------------------------------------------------------------------------

    async def lookup(self, token: bytes) -> GatewayKey | None:
        """The key whose secret is ``token`` (active, expired or revoked), else ``None``.

        Only tokens that look like keys (``aigw_…``) are looked up; anything else is not a key,
        whatever the store holds.
        """
        if not token.startswith(_MARK):
            return None
        await self.refresh()
        digest = hashlib.sha256(token).digest()
        entry = self._by_digest.get(digest)
        if entry is not None and hmac.compare_digest(bytes.fromhex(entry.digest), digest):
            return entry
        return None

    async def current(self, key: GatewayKey) -> GatewayKey | None:
        """The latest state of ``key`` (a PATCH, a rotation, a revocation), ``None`` if it is gone."""
        await self.refresh()
        latest = self._by_id.get(key.id)
        if latest is None or latest.digest != key.digest:
            return None  # rotated: the secret this client presented is no longer the key's
        return latest

    def known(self) -> list[GatewayKey]:
        """The keys of the last snapshot (admin listings read the store itself)."""
        return list(self._by_id.values())

    # -- refreshing -----------------------------------------------------------------------------

    def invalidate(self) -> None:
        """A change was just written by this instance: the next request rereads the store."""
        self._checked = float("-inf")

    async def refresh(self) -> None:
        if self._monotonic() - self._checked < self.refresh_s:
            return
        lock = self._get_lock()
        async with lock:
            if self._monotonic() - self._checked < self.refresh_s:
                return  # another request refreshed while this one waited
            # The snapshot is as new as the moment its read *started*: any change committed
            # before then is in it, so a request checked refresh_s after a commit sees it.
            started = self._monotonic()
            try:
                version = await self.breaker.call(self.store.version)
                if version != self._version:
                    version, keys = await self.breaker.call(self.store.load)
                    self._install(version, keys)
            except StorageDown:
                if self._version is None:
                    raise
                return  # serve the last snapshot; the breaker says when to try again
            self._checked = started

    def _install(self, version: int, keys: list[GatewayKey]) -> None:
        self._by_digest = {bytes.fromhex(k.digest): k for k in keys}
        self._by_id = {k.id: k for k in keys}
        self._version = version

    def _get_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def aclose(self) -> None:
        await self.store.aclose()
