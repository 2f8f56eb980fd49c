"""The dashboard's serving side over real HTTP: who gets the page, its headers, its assets, offline.

The browser-driven behaviour is in test_dashboard_browser.py; here plain HTTP checks what any
client (and a cautious operator) can see: the page is public only when an admin token guards
the data, every answer carries the strict CSP, and nothing the page loads lives off this origin.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from aigw_asgi.dashboard import CSP, STATIC

ADMIN_TOKEN = "dash-admin-token-0123456789"


@pytest.fixture
def guarded(make_gateway) -> httpx.Client:
    _, server = make_gateway(gateway={"admin_token": ADMIN_TOKEN})
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


@pytest.fixture
def local(make_gateway) -> httpx.Client:
    _, server = make_gateway()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def assets_of_page() -> list[str]:
    """Every file the page loads: the HTML's src/href and each module's static imports."""
    html = (STATIC / "index.html").read_text()
    found = set(re.findall(r'(?:src|href)="(assets/[^"]+)"', html))
    for js in (STATIC / "assets").glob("*.js"):
        found |= {f"assets/{name}" for name in re.findall(r'from "\./([^"]+)"', js.read_text())}
    return sorted(found)


def test_the_page_is_public_when_a_token_guards_the_data(guarded: httpx.Client) -> None:
    page = guarded.get("/admin/")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"] == CSP
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["x-frame-options"] == "DENY"
    assert '<meta name="aigw-admin-auth" content="token">' in page.text
    assert ADMIN_TOKEN not in page.text
    # The data is not: the API still wants the token, and the page's own URL never opens it.
    assert guarded.get("/admin/logs").status_code == 401
    assert guarded.get("/admin/config").status_code == 401
    assert guarded.post("/admin/").status_code == 401
    authorized = guarded.get("/admin/logs", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert authorized.status_code == 200
    # Path tricks do not count as the page.
    assert guarded.get("/admin/assets/%2e%2e/logs").status_code == 401

    redirect = guarded.get("/admin")
    assert redirect.status_code == 307 and redirect.headers["location"] == "/admin/"


def test_every_asset_is_served_with_the_policy(guarded: httpx.Client) -> None:
    assets = assets_of_page()
    assert {"assets/app.js", "assets/style.css", "assets/charts.js", "assets/logs.js"} <= set(assets)
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for asset in assets:
        resp = guarded.get(f"/admin/{asset}")
        assert resp.status_code == 200, asset
        assert resp.headers["content-type"].startswith(types[Path(asset).suffix]), asset
        assert resp.headers["content-security-policy"] == CSP, asset
        assert resp.headers["etag"], asset  # browsers revalidate instead of downloading again
    missing = guarded.get("/admin/assets/nope.js")
    assert missing.status_code == 404 and missing.json()["error"][0]["code"] == 2004


def test_nothing_is_loaded_from_another_origin() -> None:
    """No CDN, no remote font: the only absolute URL in the shipped files is the SVG namespace."""
    files = [STATIC / "index.html", *sorted((STATIC / "assets").iterdir())]
    assert len(files) >= 8
    for path in files:
        text = path.read_text()
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*", text)) - {"http://www.w3.org/2000/svg"}
        assert not urls, (path.name, urls)
        assert "@import" not in text and "url(" not in text, path.name
    assert "script-src 'self'" in CSP and "connect-src 'self'" in CSP and "default-src 'none'" in CSP
    assert "unsafe-inline" not in CSP and "unsafe-eval" not in CSP


def test_without_an_admin_token_only_loopback_gets_the_page(local: httpx.Client) -> None:
    page = local.get("/admin/")
    assert page.status_code == 200 and '<meta name="aigw-admin-auth" content="loopback">' in page.text
    assert local.get("/admin/assets/app.js").status_code == 200
    # A reverse proxy on the same host makes every remote client look local: refused, like the API.
    proxied = local.get("/admin/", headers={"x-forwarded-for": "203.0.113.7"})
    assert proxied.status_code == 401 and proxied.json()["error"][0]["code"] == 2009
    assert local.get("/admin/assets/app.js", headers={"x-forwarded-for": "203.0.113.7"}).status_code == 401


def test_the_page_methods_and_traversal(local: httpx.Client) -> None:
    refused = local.delete("/admin/")
    assert refused.status_code == 405 and refused.json()["error"][0]["code"] == 2004
    assert local.post("/admin/assets/app.js").status_code == 405
    assert local.get("/admin/assets/%2e%2e/__init__.py").status_code == 404
    assert local.head("/admin/").status_code == 200


def test_log_detail_with_bodies(local: httpx.Client) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    resp = local.post("/openai/chat/completions", json=body)
    log_id = resp.headers["cf-aig-log-id"]
    plain = local.get(f"/admin/logs/{log_id}").json()["result"]
    assert "request_body" not in plain
    row = local.get(f"/admin/logs/{log_id}", params={"bodies": "true"}).json()["result"]
    assert '"content":"hi"' in row["request_body"].replace(" ", "") and "chat.completion" in row["response_body"]


def test_cache_stats(local: httpx.Client) -> None:
    empty = local.get("/admin/cache").json()["result"]
    assert empty == {"storage": "MemoryStorage", "entries": 0, "bytes": 0}
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    local.post("/openai/chat/completions", json=body, headers={"cf-aig-cache-ttl": "60"})
    stats = local.get("/admin/cache").json()["result"]
    assert stats["entries"] == 1 and stats["bytes"] > 0


def test_under_a_mount_path_every_url_is_relative(make_gateway) -> None:
    _, server = make_gateway(gateway={"mount_path": "/ai"})
    with httpx.Client(base_url=server.url, timeout=10) as client:
        redirect = client.get("/ai/admin")
        assert redirect.status_code == 307 and redirect.headers["location"] == "/ai/admin/"
        page = client.get("/ai/admin/")
        assert page.status_code == 200
        # The page names its assets and API calls relative to itself, never from the root.
        assert 'src="assets/app.js"' in page.text and 'href="/' not in page.text and 'src="/' not in page.text
        assert client.get("/ai/admin/assets/app.js").status_code == 200
        assert client.get("/ai/admin/health").json()["success"] is True
        assert client.get("/admin/").status_code == 404  # outside the mount: not the gateway's
