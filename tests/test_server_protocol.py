"""Slow clients against a real ``aigw serve``, over raw sockets (issue 11, defect 6).

Half-sent headers, a stalled body, a body trickled a byte at a time, a connection that never
speaks, oversized headers: each is answered (408/431, SPEC envelope) and closed within its bound,
authenticated or not. Each socket's own timeout only keeps a broken server from hanging the test.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import httpx
import pytest

from tests.fakes.upstream import RunningFake

HANG_GUARD_S = 15  # far beyond every bound below: reaching it means the server kept the socket
TOKEN = "tok-slow-clients-1"
CHAT = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'

Serve = Callable[..., int]


@pytest.fixture
def serve_slow(aigw_serve: Callable[[str], int], fake_upstream: RunningFake) -> Serve:
    """``serve_slow(extra_toml, header_timeout_ms=500) -> port``: ``aigw serve`` on the fake provider."""

    def start(extra: str = "", header_timeout_ms: int = 500) -> int:
        return aigw_serve(
            f"""
[server]
header_timeout_ms = {header_timeout_ms}
{extra}

[logs]
store = "memory://"

[providers.openai]
base_url = "{fake_upstream.url}/v1"
"""
        )

    return start


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD_S)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a hang fails the test)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            raise AssertionError(f"the server kept the connection open; got so far: {data[:200]!r}") from None
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def status_and_error(response: bytes) -> tuple[int, dict[str, object] | None]:
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)["error"][0] if body.startswith(b"{") else None


def request_head(path: str = "/openai/chat/completions", **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "host: 127.0.0.1", "content-type: application/json"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_half_sent_headers_get_408_and_the_connection_closes(serve_slow: Serve) -> None:
    port = serve_slow()
    with connect(port) as sock:
        sock.sendall(b"POST /openai/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nx-half: ")
        started = time.monotonic()
        response = read_until_closed(sock)
    assert time.monotonic() - started < HANG_GUARD_S
    status, error = status_and_error(response)
    assert status == 408 and error == {"code": 2004, "message": "Request headers not received in time"}
    assert b"connection: close" in response.lower()


def test_a_connection_that_never_speaks_is_closed(serve_slow: Serve) -> None:
    port = serve_slow()
    with connect(port) as sock:
        status, _ = status_and_error(read_until_closed(sock))
    assert status == 408


def test_headers_trickled_a_byte_at_a_time_are_cut_off(serve_slow: Serve) -> None:
    """Each byte resets nothing: the deadline counts from the request's first byte."""
    port = serve_slow()
    head = request_head(**{"content-length": str(len(CHAT))})
    with connect(port) as sock:
        sock.settimeout(0.05)
        received = b""
        for byte in head:
            sock.sendall(bytes([byte]))
            try:
                received = sock.recv(65536)
            except TimeoutError:
                continue
            break
        sock.settimeout(HANG_GUARD_S)
        received += read_until_closed(sock)
    assert status_and_error(received)[0] == 408


def test_oversized_headers_get_431_and_the_connection_closes(serve_slow: Serve) -> None:
    port = serve_slow("max_header_bytes = 4096")
    with connect(port) as sock:
        sock.sendall(b"POST /openai/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n")
        for i in range(100):
            sock.sendall(f"x-filler-{i}: {'a' * 100}\r\n".encode())
        status, error = status_and_error(read_until_closed(sock))
    assert status == 431 and error == {"code": 2004, "message": "Request headers too large"}


def test_a_stalled_body_gets_408_with_the_envelope_and_the_connection_closes(serve_slow: Serve) -> None:
    port = serve_slow("\n[gateway]\nbody_timeout_ms = 500")
    with connect(port) as sock:
        sock.sendall(request_head(**{"content-length": "100"}) + CHAT[:10])
        response = read_until_closed(sock)
    status, error = status_and_error(response)
    assert status == 408 and error == {"code": 2004, "message": "Request body not received within 0.5 s"}
    assert b"cf-aig-log-id" in response.lower()


def test_a_chunked_body_trickled_a_byte_at_a_time_gets_408(serve_slow: Serve) -> None:
    port = serve_slow("\n[gateway]\nbody_timeout_ms = 500")
    with connect(port) as sock:
        sock.sendall(request_head(**{"transfer-encoding": "chunked"}))
        sock.settimeout(0.1)
        received = b""
        for byte in CHAT * 10:  # far more than the deadline allows at this pace
            sock.sendall(b"1\r\n" + bytes([byte]) + b"\r\n")
            try:
                received = sock.recv(65536)
            except TimeoutError:
                continue
            break
        sock.settimeout(HANG_GUARD_S)
        received += read_until_closed(sock)
    status, error = status_and_error(received)
    assert status == 408 and error is not None and error["code"] == 2004


def test_an_unauthenticated_stalled_body_is_refused_and_then_closed(serve_slow: Serve) -> None:
    """The gateway answers 401 without reading the body; the server then stops waiting for it."""
    port = serve_slow(
        f'\n[gateway]\nbody_timeout_ms = 500\nauthentication = true\ntokens = [{{name = "a", token = "{TOKEN}"}}]'
    )
    with connect(port) as sock:
        sock.sendall(request_head(**{"content-length": "100000"}) + CHAT[:10])
        status, error = status_and_error(read_until_closed(sock))
    assert status == 401 and error is not None and error["code"] == 2009


def test_a_prompt_client_is_unaffected(serve_slow: Serve, fake_upstream: RunningFake) -> None:
    """Headers in several packets within the deadline, then keep-alive requests on one connection."""
    port = serve_slow()
    head = request_head(**{"content-length": str(len(CHAT))})
    with connect(port) as sock:
        sock.sendall(head[:20])
        time.sleep(0.05)
        sock.sendall(head[20:] + CHAT)
        first = sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 200")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        for _ in range(3):
            assert client.post("/openai/chat/completions", content=CHAT).status_code == 200
    assert len(fake_upstream.app.requests) == 4


def test_connections_beyond_limit_concurrency_get_503(serve_slow: Serve) -> None:
    port = serve_slow("limit_concurrency = 3", header_timeout_ms=20000)
    holders = [connect(port) for _ in range(2)]
    for sock in holders:
        sock.sendall(b"POST /openai/chat/completions HTTP/1.1\r\n")  # holding a slot, headers unsent
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            assert client.post("/openai/chat/completions", content=CHAT).status_code == 503
    finally:
        for sock in holders:
            sock.close()
    deadline = time.monotonic() + 10
    while True:  # the server notices the closed holders
        status = httpx.post(f"http://127.0.0.1:{port}/openai/chat/completions", content=CHAT, timeout=10).status_code
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert status == 200
