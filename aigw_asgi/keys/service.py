"""KeyService: create, list, change, rotate and revoke keys — what the admin API and the CLI share.

Input is validated by `parse_changes` (model.py) before it gets here, so both front ends refuse
the same things with the same words. After every write the local `KeyResolver` (when there is
one) forgets its snapshot, so this instance applies the change at once; other instances pick it
up at their next refresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..errors import InvalidRequest, NotFound
from ..ids import uuid7
from .model import GatewayKey, make_key, parse_changes, rotated
from .resolver import KeyResolver
from .store import KeyStore

STATUSES = ("active", "expired", "revoked")


class KeyService:
    def __init__(
        self,
        store: KeyStore,
        gateway_id: str,
        *,
        resolver: KeyResolver | None = None,
        reserved_names: frozenset[str] = frozenset(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``reserved_names``: the config's token names (a key may not share one: same scopes)."""
        self.store = store
        self.gateway_id = gateway_id
        self.resolver = resolver
        self.reserved_names = reserved_names
        self.clock = clock

    def _changed(self) -> None:
        if self.resolver is not None:
            self.resolver.invalidate()

    def _check_name(self, changes: dict[str, Any]) -> None:
        if changes.get("name") in self.reserved_names:
            raise InvalidRequest(f"name: {changes['name']!r} is the name of a configured token")

    async def create(self, body: Any) -> tuple[GatewayKey, str]:
        """A new key from an API body, and its secret (to show once)."""
        changes = parse_changes(body, creating=True)
        self._check_name(changes)
        key, secret = make_key(self.gateway_id, uuid7(), changes, self.clock())
        await self.store.insert(key)
        self._changed()
        return key, secret

    async def list(self, status: str | None = None) -> list[GatewayKey]:
        if status is not None and status not in STATUSES:
            raise InvalidRequest("status: expected active, expired or revoked")
        _, keys = await self.store.load()
        now = self.clock()
        found = [k for k in keys if status is None or k.status(now) == status]
        return sorted(found, key=lambda k: (k.created_at, k.id))

    async def get(self, key_id: str) -> GatewayKey:
        key = await self.store.get(key_id)
        if key is None:
            raise NotFound("Key not found")
        return key

    async def find(self, id_or_name: str) -> GatewayKey:
        """By id, else the live key with that name (the CLI lets operators type names)."""
        key = await self.store.get(id_or_name)
        if key is not None:
            return key
        named = [k for k in await self.list() if k.name == id_or_name]
        live = [k for k in named if k.revoked_at is None]
        if live or named:
            return (live or named)[-1]
        raise NotFound("Key not found")

    async def _write(self, key: GatewayKey) -> GatewayKey:
        if not await self.store.update(key):
            raise InvalidRequest("Key is revoked: a revoked key cannot change")
        self._changed()
        return key

    async def patch(self, key_id: str, body: Any) -> GatewayKey:
        changes = parse_changes(body, creating=False)
        self._check_name(changes)
        key = await self.get(key_id)
        if key.revoked_at is not None:
            raise InvalidRequest("Key is revoked: a revoked key cannot change")
        return await self._write(replace(key, **changes, updated_at=self.clock()))

    async def rotate(self, key_id: str) -> tuple[GatewayKey, str]:
        """A new secret for the same key (id, name, policy, budget spend); the old one stops working."""
        key = await self.get(key_id)
        if key.revoked_at is not None:
            raise InvalidRequest("Key is revoked: a revoked key cannot be rotated")
        new, secret = rotated(key, self.clock())
        return await self._write(new), secret

    async def revoke(self, key_id: str) -> GatewayKey:
        """Revoke (idempotent: revoking a revoked key returns it unchanged)."""
        key = await self.get(key_id)
        if key.revoked_at is not None:
            return key
        now = self.clock()
        new = replace(key, revoked_at=now, updated_at=now)
        if not await self.store.update(new):
            return await self.get(key_id)  # revoked meanwhile by someone else
        self._changed()
        return new
