"""Bad input gets a clear JSON error with the right status (SPEC §4), over real HTTP."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from tests.fakes.upstream import RunningFake

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def error(resp: httpx.Response) -> tuple[int, int, str]:
    body = resp.json()
    assert body["success"] is False and body["result"] == [] and body["messages"] == []
    assert resp.headers["cf-aig-log-id"] and resp.headers["cf-aig-cache-status"] == "MISS"
    return resp.status_code, body["error"][0]["code"], body["error"][0]["message"]


def raw_request(port: int, target: bytes) -> bytes:
    """Send a request line exactly as written: HTTP clients normalise dot segments away."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_unknown_provider(make_gateway) -> None:
    _, server = make_gateway()
    resp = httpx.post(f"{server.url}/not-a-provider/chat/completions", json=CHAT)
    assert error(resp) == (400, 2008, "Invalid provider: not-a-provider")


@pytest.mark.parametrize(
    "target",
    [
        b"/openai/../admin/x",
        b"/openai/%2e%2e/x",
        b"/openai/a%2Fb",
        b"/openai/a%5cb",
        b"/openai//evil.com/x",
        b"/openai/https://evil.com/x",
        b"/openai/./models",
        b"/azure-openai/evil.com%23/dep/chat",
    ],
)
def test_path_tricks_are_refused(make_gateway, fake_upstream: RunningFake, target: bytes) -> None:
    _, server = make_gateway()
    answer = raw_request(server.port, target)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b'"code":2004' in answer
    assert fake_upstream.app.requests == []


def test_oversized_body_is_413_declared_or_streamed(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway(gateway={"max_request_bytes": 1000})
    big = b'{"model":"m","pad":"' + b"x" * 2000 + b'"}'
    resp = httpx.post(f"{server.url}/openai/chat/completions", content=big)
    assert error(resp)[:2] == (413, 2007)

    def chunked():  # no Content-Length: the cap applies while the body arrives
        for _ in range(10):
            yield b"x" * 500

    resp = httpx.post(f"{server.url}/openai/chat/completions", content=chunked())
    assert error(resp)[:2] == (413, 2007)
    assert fake_upstream.app.requests == []


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("cf-aig-max-attempts", "9"),
        ("cf-aig-request-timeout", "soon"),
        ("cf-aig-metadata", "{bad"),
        ("cf-aig-backoff", "random"),
    ],
)
def test_bad_header_values_name_the_header(make_gateway, header: str, value: str) -> None:
    _, server = make_gateway()
    resp = httpx.post(f"{server.url}/openai/chat/completions", json=CHAT, headers={header: value})
    status, code, message = error(resp)
    assert (status, code) == (400, 2004) and header in message


def test_root_and_bare_provider(make_gateway) -> None:
    _, server = make_gateway()
    assert error(httpx.get(f"{server.url}/"))[:2] == (404, 2004)


@pytest.mark.parametrize("path", ["/openai", "/openai/", "/openai/v1", "/azure-openai/res/dep", "/ollama"])
def test_a_provider_without_an_endpoint_path_is_refused(make_gateway, fake_upstream: RunningFake, path: str) -> None:
    """Issue 11 defect 10: ``POST /openai`` was forwarded to the bare base URL."""
    _, server = make_gateway()
    status, code, message = error(httpx.post(f"{server.url}{path}", json={"model": "m"}))
    assert (status, code) == (400, 2004) and "Invalid path" in message
    assert not fake_upstream.app.requests


def test_headers_forwarded_and_stripped(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway()
    resp = httpx.post(
        f"{server.url}/openai/chat/completions",
        json=CHAT,
        headers={
            "authorization": "Bearer sk-mine",
            "cf-aig-authorization": "Bearer gateway-secret",
            "cf-aig-metadata": '{"user":"u1"}',
            "openai-organization": "org-1",
            "x-forwarded-for": "10.0.0.1",
            "te": "trailers",
        },
    )
    assert resp.status_code == 200
    seen = fake_upstream.app.last.headers
    assert seen["authorization"] == "Bearer sk-mine" and seen["openai-organization"] == "org-1"
    assert not [k for k in seen if k.startswith("cf-aig-")]
    assert "te" not in seen and "x-forwarded-for" not in seen


def test_byok_key_injected_only_without_a_client_key(make_gateway, fake_upstream: RunningFake) -> None:
    keys = {"api_key": "sk-stored", "api_keys": [{"alias": "b", "key": "sk-b"}]}
    _, server = make_gateway(providers={"openai": keys})
    url = f"{server.url}/openai/chat/completions"
    assert httpx.post(url, json=CHAT).status_code == 200
    assert fake_upstream.app.last.headers["authorization"] in ("Bearer sk-stored", "Bearer sk-b")
    assert httpx.post(url, json=CHAT, headers={"cf-aig-byok-alias": "b"}).status_code == 200
    assert fake_upstream.app.last.headers["authorization"] == "Bearer sk-b"
    assert httpx.post(url, json=CHAT, headers={"authorization": "Bearer sk-client"}).status_code == 200
    assert fake_upstream.app.last.headers["authorization"] == "Bearer sk-client"
    resp = httpx.post(url, json=CHAT, headers={"cf-aig-byok-alias": "nope"})
    status, code, message = error(resp)
    assert (status, code) == (400, 2040) and "'default', 'b'" in message
    assert "sk-stored" not in resp.text and "sk-b" not in resp.text


def test_anthropic_byok_uses_its_own_header(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway(providers={"anthropic": {"api_key": "sk-ant-stored"}})
    resp = httpx.post(
        f"{server.url}/anthropic/v1/messages",
        json={"model": "claude-fake-1", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
    )
    assert resp.status_code == 200
    assert fake_upstream.app.last.headers["x-api-key"] == "sk-ant-stored"
    assert fake_upstream.app.last.headers["anthropic-version"] == "2023-06-01"


def test_query_string_and_azure_layout(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway()  # the fixture points azure-openai at the fake's deployments path
    resp = httpx.post(
        f"{server.url}/azure-openai/my-resource/my-dep/chat/completions?api-version=2024-06-01",
        json={"messages": [{"role": "user", "content": "x"}]},
        headers={"api-key": "azure-key"},
    )
    assert resp.status_code == 200 and resp.headers["cf-aig-model"] == "my-dep"
    seen = fake_upstream.app.last
    assert seen.path == "/openai/deployments/my-dep/chat/completions"
    assert seen.query_string == "api-version=2024-06-01" and seen.headers["api-key"] == "azure-key"


def test_a_stored_key_quoted_by_the_provider_never_reaches_the_client(make_gateway, fake_upstream: RunningFake) -> None:
    from tests.fakes.upstream import RawResponse

    secret = "sk-stored-key-0123456789abcdef"
    _, server = make_gateway(providers={"openai": {"api_key": secret}})
    error = {"error": {"message": f"Incorrect API key provided: {secret}", "type": "invalid_request_error"}}
    body = json.dumps(error).encode()
    fake_upstream.app.response = RawResponse(401, body, content_type="application/json")
    resp = httpx.post(f"{server.url}/openai/chat/completions", json=CHAT)
    assert resp.status_code == 401
    assert secret not in resp.text and "[REDACTED]" in resp.text
    assert resp.json()["error"]["type"] == "invalid_request_error"  # still the provider's own body
    assert fake_upstream.app.last.headers["authorization"] == f"Bearer {secret}"  # it was used upstream
    # A key the client sent itself is its own business: its error body is relayed untouched.
    resp = httpx.post(f"{server.url}/openai/chat/completions", json=CHAT, headers={"authorization": "Bearer sk-own"})
    assert secret in resp.text
