"""Clients that hang up, through a real uvicorn: at the stream's last event, and before the first byte.

Issue 11, defects 1 and 4. The official openai SDK closes its connection as soon as it reads
``data: [DONE]``, litellm as soon as it reads Anthropic's ``message_stop``; real providers close
their side a few milliseconds later. The fake provider here lingers much longer after its last
frame (``linger_s``), so the client is always gone before the upstream ends: the request must
still be a success, and cached. A client that hangs up while the provider is still thinking must
cancel the upstream call and be logged as 499.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx
import openai

from tests.fakes.upstream import RunningFake

MESSAGES = [{"role": "user", "content": "hello"}]
LINGER = "30"  # seconds the fake provider keeps a finished stream open: far beyond any test


def row_for(server_url: str, *, log_id: str | None = None, event_id: str | None = None) -> dict[str, Any]:
    """The log row of a request, once the gateway has finished it (rows are written in the background)."""
    deadline = time.monotonic() + 10
    while True:
        if log_id is not None:
            resp = httpx.get(f"{server_url}/admin/logs/{log_id}", timeout=10)
            if resp.status_code == 200:
                return dict(resp.json()["result"])
        else:
            resp = httpx.get(f"{server_url}/admin/logs", params={"event_id": event_id}, timeout=10)
            found = resp.json()["result"]
            if found:
                return dict(found[0])
        assert time.monotonic() < deadline, f"no log row for {log_id or event_id}"
        time.sleep(0.05)


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


# -- defect 1: the client leaves at the terminal event -------------------------------------------


def test_openai_sdk_hanging_up_at_done_is_a_cached_success(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway()
    client = openai.OpenAI(base_url=f"{server.url}/openai/v1", api_key="sk-x", max_retries=0)
    headers = {"cf-aig-cache-ttl": "300", "x-fake-linger": LINGER}

    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers=headers
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices)
    assert text == "chunk0 chunk1 chunk2 chunk3 chunk4 "
    # The SDK stopped at [DONE] and closed; the provider had not ended its stream yet.
    wait_until(lambda: fake_upstream.app.last.disconnected, "the gateway kept waiting for the provider")

    row = row_for(server.url, log_id=raw.headers["cf-aig-log-id"])
    assert row["success"] is True and row["status_code"] == 200, row
    assert row["error"] is None and row["tokens_out"] == 5

    again = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers=headers
    )
    replayed = "".join(chunk.choices[0].delta.content or "" for chunk in again.parse() if chunk.choices)
    assert again.headers["cf-aig-cache-status"] == "HIT" and replayed == text
    assert len(fake_upstream.app.requests) == 1


def test_a_client_stopping_at_anthropic_message_stop_is_a_cached_success(
    make_gateway, fake_upstream: RunningFake
) -> None:
    """What litellm does with Anthropic streams: read up to ``message_stop``, then close."""
    _, server = make_gateway()
    body = {"model": "claude-fake-1", "max_tokens": 10, "messages": MESSAGES, "stream": True}
    headers = {"x-api-key": "sk-ant-x", "anthropic-version": "2023-06-01", "cf-aig-cache-ttl": "300"}

    def stop_at_message_stop(client: httpx.Client) -> tuple[str, str, list[str]]:
        events: list[str] = []
        with client.stream("POST", "/anthropic/v1/messages", json=body, headers=headers) as resp:
            for line in resp.iter_lines():
                if line.startswith("event: "):
                    events.append(line[7:])
                if line.startswith("data: ") and events[-1:] == ["message_stop"]:
                    break  # the stream is complete for this client: hang up without reading on
        return resp.headers["cf-aig-log-id"], resp.headers["cf-aig-cache-status"], events

    with httpx.Client(base_url=server.url, timeout=10, headers={"x-fake-linger": LINGER}) as client:
        log_id, status, events = stop_at_message_stop(client)
        assert status == "MISS" and events[0] == "message_start" and events[-1] == "message_stop"
        wait_until(lambda: fake_upstream.app.last.disconnected, "the gateway kept waiting for the provider")
        row = row_for(server.url, log_id=log_id)
        assert row["success"] is True and row["error"] is None and row["tokens_out"] == 5, row

        _, status, replayed = stop_at_message_stop(client)
    assert status == "HIT" and replayed == events
    assert len(fake_upstream.app.requests) == 1


def test_a_client_leaving_before_the_terminal_event_is_still_not_a_success(
    make_gateway, fake_upstream: RunningFake
) -> None:
    """The other side of the rule: a stream cut before its last event is neither whole nor cached."""
    _, server = make_gateway()
    fake_upstream.app.chunk_delay_s = 0.2
    fake_upstream.app.chunks = 20
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        with client.stream("POST", "/openai/chat/completions", json=body, headers={"cf-aig-cache-ttl": "300"}) as resp:
            log_id = resp.headers["cf-aig-log-id"]
            for _ in resp.iter_raw():
                break
    row = row_for(server.url, log_id=log_id)
    assert row["success"] is False and row["error"] == "client disconnected"
    with httpx.Client(base_url=server.url, timeout=10) as client:
        fake_upstream.app.chunk_delay_s = 0
        again = client.post("/openai/chat/completions", json=body, headers={"cf-aig-cache-ttl": "300"})
    assert again.headers["cf-aig-cache-status"] == "MISS"


# -- defect 4: the client leaves before the first upstream byte ------------------------------------


def _send_and_hang_up(port: int, path: str, body: bytes, headers: dict[str, str], fake: RunningFake) -> None:
    """Send a request over a raw socket, wait until it reached the provider, then close the socket."""
    head = f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"content-length: {len(body)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        fake.app.wait_for_requests(1, timeout_s=10)


def test_a_client_gone_before_the_first_byte_cancels_the_upstream_call(
    make_gateway, fake_upstream: RunningFake
) -> None:
    _, server = make_gateway()
    body = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'
    # The provider is still generating (it never answers on its own).
    headers = {"x-fake-hang": "1", "cf-aig-event-id": "gone-early"}
    _send_and_hang_up(server.port, "/openai/chat/completions", body, headers, fake_upstream)

    wait_until(lambda: fake_upstream.app.last.disconnected, "the upstream call outlived its client")
    row = row_for(server.url, event_id="gone-early")
    assert row["status_code"] == 499 and row["success"] is False, row
    assert row["error"] == "client disconnected" and row["error_type"] == "client_disconnect"


def test_a_universal_request_gone_before_the_first_byte_tries_no_further_step(
    make_gateway, fake_upstream: RunningFake
) -> None:
    _, server = make_gateway()
    step = {"provider": "openai", "endpoint": "chat/completions", "query": {"model": "gpt-4o-mini", "messages": []}}
    hanging = {**step, "headers": {"x-fake-hang": "1"}}
    body = httpx.Request("POST", "http://x", json=[hanging, step]).content
    _send_and_hang_up(server.port, "/", body, {"cf-aig-event-id": "universal-gone"}, fake_upstream)

    wait_until(lambda: fake_upstream.app.last.disconnected, "the upstream call outlived its client")
    row = row_for(server.url, event_id="universal-gone")
    assert row["status_code"] == 499 and row["step"] == 0, row
    # Nobody is left to answer: the fallback step was never called (a request's rows are written
    # together, once it has finished).
    rows = httpx.get(f"{server.url}/admin/logs", params={"event_id": "universal-gone"}, timeout=10).json()["result"]
    assert len(rows) == 1 and len(fake_upstream.app.requests) == 1
