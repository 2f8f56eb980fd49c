"""A realtime session from a real browser: headless Chromium's own ``WebSocket``.

A browser can set no header on a WebSocket: the gateway token and the OpenAI key both travel as
subprotocol entries, and the browser fails the handshake unless the server echoes an entry it
offered -- which no Python client checks. It also never sees the HTTP status of a refused
handshake, which is why the provider's refusal becomes a close with a code and reason: the page
reads both here.

Needs Debian's ``chromium`` package (``/usr/bin/chromium``); skipped when it is absent.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.realtime.conftest import session_rows
from tests.websocket.test_browser import CHROMIUM, PageServer, run_in_chromium

TOKEN = "browser-rt-token-0123456789"
KEY = "sk-browser-realtime-key"

PAGE = """<!doctype html>
<html><body>waiting<script>
const protocols = %(protocols)s;
const report = (result) => fetch("/result", {method: "POST", body: JSON.stringify(result)});
const result = {};
const session = new WebSocket(%(url)s, protocols);
const types = [];
session.onmessage = (event) => {
  const message = JSON.parse(event.data);
  types.push(message.type);
  if (message.type === "session.created") session.send(JSON.stringify({type: "response.create"}));
  if (message.type === "response.done") {
    result.protocol = session.protocol;
    result.types = types;
    session.close(1000, "done");
  }
};
session.onerror = () => { result.error = "session failed"; };
session.onclose = () => {
  const refused = new WebSocket(%(refused_url)s, protocols);
  refused.onclose = (event) => { result.refused = {code: event.code, reason: event.reason}; report(result); };
};
</script></body></html>
"""


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium package (/usr/bin/chromium)")
def test_chromium_realtime_session_and_readable_refusal(realtime_gateway, serve, fake) -> None:
    _, gateway = realtime_gateway(gateway={"authentication": True, "tokens": [{"name": "web", "token": TOKEN}]})
    url = f"{gateway.ws_url}/openai/v1/realtime?model=gpt-realtime"
    protocols = ["realtime", f"cf-aig-authorization.{TOKEN}", f"openai-insecure-api-key.{KEY}"]
    page = PageServer(
        PAGE
        % {
            "url": json.dumps(url),
            "refused_url": json.dumps(url + "&fake_status=401"),
            "protocols": json.dumps(protocols),
        }
    )
    site = serve(page)
    run_in_chromium(page, f"{site.url}/")
    result = page.result
    assert result is not None and "error" not in result, result
    assert result["protocol"] == "realtime"  # the provider's choice, never an entry holding a secret
    assert result["types"][0] == "session.created" and result["types"][-1] == "response.done"
    assert result["refused"] == {"code": 4401, "reason": "upstream refused the connection: 401 Unauthorized"}
    first = fake.sessions[0]
    assert first.subprotocols == ["realtime"] and first.headers["authorization"] == f"Bearer {KEY}"
    assert TOKEN not in json.dumps(first.headers)
    logged = session_rows(gateway, 2)
    assert {r["status_code"] for r in logged} == {101, 401} and {r["token_name"] for r in logged} == {"web"}
