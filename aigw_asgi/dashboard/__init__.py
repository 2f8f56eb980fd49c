"""The dashboard (SPEC §15): a static page at ``/admin/`` that reads the admin API from the browser.

    GET /admin            -> 307 to /admin/ (the page's relative URLs need the slash)
    GET /admin/           the page (static/index.html)
    GET /admin/assets/*   its ES modules, stylesheet and icon (static/assets/)

Nothing is rendered on the server: the page is the same file for everyone and holds no data, so
when an admin token is configured `is_shell` lets the guard serve it without one (a browser
cannot send a bearer token when it navigates); the page asks for the token and sends it on each
admin API call. With no admin token the whole of ``/admin`` stays loopback-only, page included.

Offline by construction: every asset ships inside the package, and the Content-Security-Policy
allows the browser to load nothing from anywhere but this origin (no CDN, no remote fonts).
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..context import route_path
from ..types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CSP", "SECURITY_HEADERS", "STATIC", "is_shell", "routes"]

STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",  # revalidate (ETag): an upgraded gateway never serves a stale page
}
_RAW_HEADERS = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]


def is_shell(scope: Scope) -> bool:
    """A GET of the page or one of its assets: public when an admin token guards the data."""
    if scope.get("method") not in ("GET", "HEAD"):
        return False
    path = route_path(scope)
    return path in ("/admin", "/admin/") or (path.startswith("/admin/assets/") and ".." not in path)


class _Secured:
    """Adds the security headers to every response of the wrapped app (the static files)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", ()), *_RAW_HEADERS]
            await send(message)

        await self.app(scope, receive, send_secured)


class _Page:
    """``index.html``, read once: a few kilobytes, served from memory with the security headers.

    The one thing filled in is whether the page must ask for an admin token (``token``) or the
    gateway lets loopback clients in without one (``loopback``): the page would learn the same
    from a 401, but knowing it first spares a failed request at every visit.
    """

    def __init__(self, path: Path, *, admin_token: bool) -> None:
        mode = b"token" if admin_token else b"loopback"
        self.body = path.read_bytes().replace(b"{{admin_auth}}", mode)

    async def __call__(self, request: Request) -> Response:
        return Response(self.body, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)


def routes(*, admin_token: bool) -> list[BaseRoute]:
    """The dashboard's routes, relative to ``/admin``; ``admin_token``: whether one is configured."""
    page = _Page(STATIC / "index.html", admin_token=admin_token)
    return [
        Route("/", page.__call__, methods=["GET"], name="dashboard"),
        Mount("/assets", app=_Secured(StaticFiles(directory=STATIC / "assets")), name="assets"),
    ]
