"""The keys section of the admin API (SPEC §14), mounted by `aigw_asgi.admin.AdminApp`.

POST   /admin/keys                 create: {"name", "expires_at"?, "allowed_providers"?,
                                   "allowed_models"?, "rate_limit"?, "budget"?, "metadata"?};
                                   the answer carries "key" — the only time it is shown
GET    /admin/keys                 every key (?status=active|expired|revoked): prefix, never the key
GET    /admin/keys/{id}            one key
PATCH  /admin/keys/{id}            change any of the create fields (null clears one)
DELETE /admin/keys/{id}            revoke (idempotent); the row stays, for logs and audits
POST   /admin/keys/{id}/rotate     a new secret for the same key; the old one stops working
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..admin import Envelope, read_json
from ..errors import InvalidRequest
from .service import KeyService


class KeyAdmin:
    def __init__(self, service: KeyService) -> None:
        self.service = service

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/keys", self.create, methods=["POST"]),
            Route("/keys", self.list, methods=["GET"]),
            Route("/keys/{key_id}", self.get, methods=["GET"]),
            Route("/keys/{key_id}", self.patch, methods=["PATCH"]),
            Route("/keys/{key_id}", self.revoke, methods=["DELETE"]),
            Route("/keys/{key_id}/rotate", self.rotate, methods=["POST"]),
        ]

    def _now(self) -> float:
        return self.service.clock()

    async def create(self, request: Request) -> Response:
        key, secret = await self.service.create(await read_json(request))
        return Envelope({**key.to_dict(self._now()), "key": secret})

    async def list(self, request: Request) -> Response:
        params = request.query_params
        unknown = set(params.keys()) - {"status"}
        if unknown:
            raise InvalidRequest(f"Unknown query parameter {sorted(unknown)[0][:64]}")
        keys = await self.service.list(params.get("status"))
        now = self._now()
        return Envelope([k.to_dict(now) for k in keys], {"count": len(keys), "total_count": len(keys)})

    async def get(self, request: Request) -> Response:
        key = await self.service.get(request.path_params["key_id"])
        return Envelope(key.to_dict(self._now()))

    async def patch(self, request: Request) -> Response:
        key = await self.service.patch(request.path_params["key_id"], await read_json(request))
        return Envelope(key.to_dict(self._now()))

    async def revoke(self, request: Request) -> Response:
        key = await self.service.revoke(request.path_params["key_id"])
        return Envelope(key.to_dict(self._now()))

    async def rotate(self, request: Request) -> Response:
        key, secret = await self.service.rotate(request.path_params["key_id"])
        return Envelope({**key.to_dict(self._now()), "key": secret})
