"""Fixtures for the dashboard's browser tests: Debian's Chromium driven by Playwright, the gateway
under real uvicorn on the loopback fake provider, and a page that records every request it makes
(off-loopback ones are aborted) and every console error.

Nothing is downloaded: Playwright drives the system browser through ``executable_path``.
Screenshots land in tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, expect, sync_playwright

from tests.fakes.upstream import RunningFake

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
ADMIN_TOKEN = "browser-admin-token-0123456789"
PROVIDER_KEY = "sk-dashboard-openai-0123456789"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
WAIT_MS = 15_000  # an upper bound for waits (never an assertion about speed)

NO_BROWSER = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (/usr/bin/chromium)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@dataclass
class Dash:
    """A gateway under uvicorn with the dashboard, and an HTTP client for traffic and checks."""

    url: str
    client: httpx.Client
    fake: RunningFake

    def chat(self, model: str = "gpt-4o-mini", stream: bool = False, **headers: str) -> httpx.Response:
        if model.startswith("claude"):
            body = {"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "hello"}]}
            return self.client.post("/anthropic/v1/messages", json=body, headers={"x-api-key": "sk-ant", **headers})
        body = {"model": model, "messages": [{"role": "user", "content": "hello"}], "stream": stream}
        return self.client.post("/openai/chat/completions", json=body, headers=headers)

    def admin(self, path: str, **params: Any) -> Any:
        resp = self.client.get(f"/admin/{path}", params=params, headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
        return resp.status_code, resp.json()


@pytest.fixture
def dash(make_gateway: Callable[..., Any], fake_upstream: RunningFake) -> Iterator[Dash]:
    _, server = make_gateway(
        gateway={"admin_token": ADMIN_TOKEN},
        providers={"openai": {"api_key": PROVIDER_KEY}},
        prices={"claude-fake-1": {"input": 1e-6, "output": 2e-6}},
    )
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield Dash(server.url, client, fake_upstream)


@dataclass
class Watched:
    """A page plus what it did: every URL it requested, those off loopback, its console errors."""

    page: Page
    requests: list[str] = field(default_factory=list)
    offsite: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert self.requests, "the page made no request at all"
        assert self.offsite == [], self.offsite
        assert self.errors == [], self.errors

    def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


@pytest.fixture
def watched(browser: Browser) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    w = Watched(page)

    def only_loopback(route: Route) -> None:
        url = route.request.url
        w.requests.append(url)
        if urlsplit(url).hostname in LOOPBACK:
            route.continue_()
        else:
            w.offsite.append(url)
            route.abort()

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            w.errors.append(message.text)

    context.route("**/*", only_loopback)
    page.on("console", console)
    page.on("pageerror", lambda exc: w.errors.append(f"uncaught: {exc}"))
    yield w
    context.close()


def sign_in(w: Watched, url: str, token: str = ADMIN_TOKEN) -> None:
    w.page.goto(f"{url}/admin/")
    expect(w.page.locator("#login")).to_be_visible()
    w.page.get_by_label("Admin token").fill(token)
    w.page.get_by_role("button", name="Sign in").click()


def open_view(w: Watched, name: str) -> None:
    w.page.locator(f"#nav a[data-view='{name}']").click()
    expect(w.page.locator(f"#nav a[data-view='{name}']")).to_have_attribute("aria-current", "page")
