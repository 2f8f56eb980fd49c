"""Who may open a realtime session and which key the provider sees, end to end.

The gateway token by header or by ``cf-aig-authorization.<T>`` subprotocol (the existing auth
layer); the provider key from the client's header, its key subprotocol, or the stored (BYOK)
key -- and none of the secrets in the log rows.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.realtime.conftest import GEMINI_PATH, OPENAI_PATH, open_ws, recv_json, rows, session_rows

TOKEN = "gw-realtime-token-0123"
STORED = "sk-stored-openai-4d5e6f"
BROWSER_KEY = "sk-browser-own-7a8b9c"
AUTH = {"authentication": True, "tokens": [{"name": "web", "token": TOKEN}]}


def test_gateway_token_by_header(realtime_gateway, fake) -> None:
    _, server = realtime_gateway(gateway=AUTH)
    headers = {"cf-aig-authorization": f"Bearer {TOKEN}", "authorization": "Bearer sk-client"}
    with open_ws(server, additional_headers=headers) as ws:
        assert recv_json(ws)["type"] == "session.created"
    seen = fake.last.headers
    assert seen["authorization"] == "Bearer sk-client" and "cf-aig-authorization" not in seen
    (row,) = session_rows(server)
    assert row["token_name"] == "web"


def test_browser_style_subprotocols(realtime_gateway, fake) -> None:
    """What a browser sends: token and provider key as subprotocol entries, no headers."""
    _, server = realtime_gateway(gateway=AUTH, providers={"openai": {"api_key": STORED}})
    offers = ["realtime", f"cf-aig-authorization.{TOKEN}", f"openai-insecure-api-key.{BROWSER_KEY}"]
    with open_ws(server, additional_headers={}, subprotocols=offers) as ws:
        assert ws.subprotocol == "realtime"  # the provider's choice, echoed
        assert recv_json(ws)["type"] == "session.created"
    session = fake.last
    assert session.subprotocols == ["realtime"]  # neither the token nor the key entry went upstream
    assert session.headers["authorization"] == f"Bearer {BROWSER_KEY}"  # the key moved into the header
    assert TOKEN not in json.dumps(session.headers)
    (row,) = session_rows(server)
    assert row["token_name"] == "web"


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"additional_headers": {"cf-aig-authorization": "Bearer wrong-token-123"}},
        {"subprotocols": ["realtime", "cf-aig-authorization.wrong-token-123"]},
    ],
)
def test_no_or_wrong_token_is_refused_before_the_provider(realtime_gateway, fake, kwargs: dict[str, Any]) -> None:
    _, server = realtime_gateway(gateway=AUTH)
    with pytest.raises(InvalidStatus) as refused:
        with open_ws(server, **kwargs):
            pass
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body)["error"][0]["code"] == 2009
    assert fake.sessions == []
    (row,) = rows(server)  # a refused upgrade is logged like a refused request
    assert row["status_code"] == 401 and row["path"] == "/openai/v1/realtime"


def test_stored_key_is_injected_and_never_logged(realtime_gateway, fake) -> None:
    _, server = realtime_gateway(gateway=AUTH, providers={"openai": {"api_key": STORED}})
    # The gateway token in the provider slot, as an SDK given the gateway token as its key sends it.
    with open_ws(server, additional_headers={"authorization": f"Bearer {TOKEN}"}) as ws:
        recv_json(ws)
        ws.send(json.dumps({"type": "fake.echo", "note": "hello"}))
        recv_json(ws)
    assert fake.last.headers["authorization"] == f"Bearer {STORED}"
    fake.refuse(401)
    with open_ws(server, additional_headers={"cf-aig-authorization": f"Bearer {TOKEN}"}) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 4401 and STORED not in closed.value.rcvd.reason
    logged = session_rows(server, 2)
    assert len(logged) == 2
    texts = [json.dumps(logged)]
    for row in logged:
        for part in ("request", "response"):
            body = httpx.get(f"{server.url}/admin/logs/{row['id']}/{part}", timeout=10)
            if body.status_code == 200:
                texts.append(body.text)
    assert any("hello" in t for t in texts)  # bodies are kept: the key was really looked for in them
    assert not any(secret in t for t in texts for secret in (STORED, TOKEN))


def test_unknown_byok_alias_is_refused(realtime_gateway, fake) -> None:
    _, server = realtime_gateway(providers={"openai": {"api_key": STORED}})
    with pytest.raises(InvalidStatus) as refused:
        with open_ws(server, additional_headers={"cf-aig-byok-alias": "nope"}):
            pass
    assert refused.value.response.status_code == 400
    assert json.loads(refused.value.response.body)["error"][0]["code"] == 2040
    assert fake.sessions == []


def test_gemini_stored_key_goes_in_its_header(realtime_gateway, fake) -> None:
    _, server = realtime_gateway(providers={"google-ai-studio": {"api_key": "AIza-stored-123"}})
    with open_ws(server, GEMINI_PATH, additional_headers={}) as ws:
        ws.send(json.dumps({"setup": {"model": "models/gemini-live"}}))
        assert json.loads(ws.recv(timeout=10)) == {"setupComplete": {}}
    assert fake.last.headers["x-goog-api-key"] == "AIza-stored-123"


def test_bad_session_header_is_a_400(realtime_gateway, fake) -> None:
    _, server = realtime_gateway()
    with pytest.raises(InvalidStatus) as refused:
        with open_ws(server, OPENAI_PATH, additional_headers={"cf-aig-metadata": "not json"}):
            pass
    assert refused.value.response.status_code == 400 and fake.sessions == []
