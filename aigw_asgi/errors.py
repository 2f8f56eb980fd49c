"""Gateway errors, each knowing its HTTP status and Cloudflare error code.

    ConfigError                     bad configuration, raised at start, never at request time
    GatewayError                    an answer the gateway makes itself (SPEC §4 envelope)
    ├── InvalidRequest              400  2004  bad header values, malformed JSON, path tricks
    ├── InvalidProvider             400  2008
    ├── BadCompatRequest            400  2019
    ├── UnknownByokAlias            400  2040
    ├── Unauthorized                401  2009
    │   └── KeyRejected             401  2033  a gateway key that expired or was revoked
    ├── KeyNotAllowed               403  2032  the key may not use this provider or model
    ├── NotFound                    404  2004
    ├── RequestTimeout              408  2004  the request body did not arrive in time
    ├── PayloadTooLarge             413  2007
    ├── RateLimited                 429  2003  + Retry-After and RateLimit-* headers
    ├── BudgetExhausted             429  2031  + Retry-After (seconds to the window's reset)
    ├── UpstreamError
    │   ├── UpstreamUnreachable     502  2005  connect errors, resets before the first byte
    │   └── UpstreamTimeout         504  2006  no first byte in time
    └── StoreUnavailable            503  2011  a backing store is down and the gateway fails closed

Upstream answers (a provider's own 4xx/5xx) are not errors here: they pass through verbatim.
Messages must never contain secrets: build them from names, never from header values.
"""

from __future__ import annotations

import json
from typing import ClassVar

from .types import Headers, Send


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending key."""


class GatewayError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[int] = 2000
    default_message: ClassVar[str] = "Internal gateway error"

    def __init__(self, message: str | None = None, *, headers: Headers | None = None):
        self.message = message or self.default_message
        self.headers = headers or []
        super().__init__(self.message)

    def envelope(self) -> bytes:
        return json.dumps(
            {
                "success": False,
                "result": [],
                "messages": [],
                "error": [{"code": self.code, "message": self.message}],
            },
            separators=(",", ":"),
        ).encode()


class InvalidRequest(GatewayError):
    status, code, default_message = 400, 2004, "Invalid request"


class InvalidProvider(GatewayError):
    status, code, default_message = 400, 2008, "Invalid provider"


class BadCompatRequest(GatewayError):
    status, code, default_message = 400, 2019, "Chat completion bad format"


class UnknownByokAlias(GatewayError):
    status, code, default_message = 400, 2040, "Unknown BYOK alias"


class Unauthorized(GatewayError):
    status, code, default_message = 401, 2009, "Unauthorized"


class KeyRejected(Unauthorized):
    status, code, default_message = 401, 2033, "Gateway key expired or revoked"


class KeyNotAllowed(GatewayError):
    status, code, default_message = 403, 2032, "Gateway key not allowed to use this provider or model"


class NotFound(GatewayError):
    status, code, default_message = 404, 2004, "Not found"


class RequestTimeout(GatewayError):
    """The request body did not arrive within ``gateway.body_timeout_ms``; the connection closes
    (the rest of the body may still be trickling in, and nobody will read it)."""

    status, code, default_message = 408, 2004, "Request body not received in time"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers=[(b"connection", b"close")])


class PayloadTooLarge(GatewayError):
    status, code, default_message = 413, 2007, "Request body too large"


class RateLimited(GatewayError):
    status, code, default_message = 429, 2003, "Rate limited"


class BudgetExhausted(GatewayError):
    status, code, default_message = 429, 2031, "Spend budget exhausted"


class UpstreamError(GatewayError):
    status, code, default_message = 502, 2005, "Failed to get response from provider"


class UpstreamUnreachable(UpstreamError):
    pass


class UpstreamTimeout(UpstreamError):
    status, code, default_message = 504, 2006, "Provider request timed out"


class UpstreamStreamError(Exception):
    """The upstream connection failed after the response had started (not an answer of ours:
    the router reports it inside the stream, or drops the connection)."""


class StoreUnavailable(GatewayError):
    status, code, default_message = 503, 2011, "A required backing store is unavailable"


async def send_error(send: Send, exc: GatewayError, extra_headers: Headers | None = None) -> None:
    """Answer with the Cloudflare envelope; ``extra_headers`` carries the ``cf-aig-*`` set."""
    body = exc.envelope()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *exc.headers,
        *(extra_headers or ()),
    ]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
