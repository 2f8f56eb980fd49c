"""The WebSocket API from a real browser: headless Chromium's own ``WebSocket``.

Browsers cannot set headers on a WebSocket, so this is the path that authenticates with the
``cf-aig-authorization.<token>`` subprotocol — and a browser fails the handshake unless the server
echoes one of the offered subprotocols, which no Python client checks. A page served by a tiny
test server opens the socket to the gateway, streams one ``universal.create`` and POSTs the frames
it got back to its own server, where the test reads them.

Needs Debian's ``chromium`` package (``/usr/bin/chromium``); skipped when it is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
from typing import Any

import pytest

from tests.fakes.upstream import RunningFake

CHROMIUM = "/usr/bin/chromium"
TOKEN = "browser-token-0123456789"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

PAGE = """<!doctype html>
<html><body>waiting<script>
const frames = [];
const report = (result) => fetch("/result", {method: "POST", body: JSON.stringify(result)});
const ws = new WebSocket(%(url)s, [%(protocol)s]);
ws.onopen = () => ws.send(JSON.stringify({type: "universal.create", request: {
  eventId: "from-browser", provider: "openai", endpoint: "chat/completions",
  headers: {authorization: "Bearer sk-browser"},
  query: {model: "gpt-4o-mini", stream: true, messages: [{role: "user", content: "hi"}]}}}));
ws.onmessage = (event) => {
  const frame = JSON.parse(event.data);
  frames.push(frame);
  if (frame.type === "universal.done" || frame.type === "universal.error") {
    document.body.textContent = JSON.stringify(frames);
    report({protocol: ws.protocol, frames: frames});
    ws.close();
  }
};
ws.onerror = () => report({error: "websocket error", frames: frames});
</script></body></html>
"""


class PageServer:
    """Serves the page at ``/`` and takes its report at ``POST /result``."""

    def __init__(self, html: str) -> None:
        self.html = html.encode()
        self.result: dict[str, Any] | None = None
        self.reported = threading.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body, status, content_type = b"", 404, b"text/plain"
        if scope["path"] == "/":
            body, status, content_type = self.html, 200, b"text/html; charset=utf-8"
        elif scope["path"] == "/result" and scope["method"] == "POST":
            data = b""
            while True:
                message = await receive()
                data += message.get("body", b"")
                if not message.get("more_body"):
                    break
            self.result = json.loads(data)
            self.reported.set()
            status = 204
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]})
        await send({"type": "http.response.body", "body": body})


def run_in_chromium(page: PageServer, url: str) -> None:
    """Open ``url`` in a headless Chromium with a fresh profile until ``page`` reports, then close it."""
    profile = tempfile.mkdtemp(prefix="aigw-chromium-")
    browser = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert page.reported.wait(60), "the page never reported (Chromium did not run it?)"
    finally:
        browser.terminate()
        try:
            browser.wait(10)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait(10)
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium package (/usr/bin/chromium)")
def test_chromium_websocket_with_subprotocol_auth(make_gateway, serve, fake_upstream: RunningFake) -> None:
    _, gateway = make_gateway(gateway={"authentication": True, "tokens": [{"name": "web", "token": TOKEN}]})
    protocol = f"cf-aig-authorization.{TOKEN}"
    page = PageServer(PAGE % {"url": json.dumps(f"{gateway.ws_url}/"), "protocol": json.dumps(protocol)})
    site = serve(page)
    run_in_chromium(page, f"{site.url}/")
    result = page.result
    assert result is not None and "error" not in result, result
    assert result["protocol"] == protocol  # the token entry was the only offer: echoed
    frames = result["frames"]
    assert frames[0]["type"] == "universal.created" and frames[-1]["type"] == "universal.done"
    assert {f["metadata"]["eventId"] for f in frames} == {"from-browser"}
    text = "".join(
        (f["response"]["choices"][0]["delta"].get("content") or "") for f in frames[1:-1] if f["response"]["choices"]
    )
    assert text == "chunk0 chunk1 chunk2 chunk3 chunk4 "
    assert fake_upstream.app.last.headers["authorization"] == "Bearer sk-browser"
