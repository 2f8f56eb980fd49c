"""Rate-limit keys and client behaviour built from generated input (SPEC §7, §4).

Rule keys are made of client-controlled text (metadata values, forwarded IPs, model names), so
they get arbitrary text here; limits are low, so 429s (with ``Retry-After`` and ``RateLimit-*``)
come up. Clients also vanish mid-body or mid-stream: the gateway must not crash or leak a task.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import event, given, settings, strategies as st

from tests.robustness.harness import TOKEN, Answer, Harness, assert_well_formed, build_scope, robust, robust_config
from tests.robustness.strategies import behaviours, json_values, latin1_text

AUTH = [(b"cf-aig-authorization", f"Bearer {TOKEN}".encode())]


@pytest.fixture
def limited() -> Iterator[Harness]:
    h = Harness(
        robust_config(
            gateway={
                "authentication": True,
                "tokens": [{"name": "app", "token": TOKEN}],
                "trusted_proxy_header": "x-forwarded-for",
                "max_request_bytes": 64 * 1024,
            },
            rate_limit={
                "limit": 1_000_000,
                "period": 60,
                "storage": "memory://",
                "rules": [
                    {"name": "per-user", "limit": 3, "period": 60, "scope": ["metadata.user"]},
                    {
                        "name": "per-ip-model",
                        "limit": 5,
                        "period": 60,
                        "technique": "sliding",
                        "scope": ["ip", "model"],
                    },
                    {"name": "tokens", "limit": 40, "period": 60, "scope": ["token", "provider"], "unit": "tokens"},
                ],
            },
        )
    )
    yield h
    assert h.close() == [], "tasks left running after aclose()"


@settings(robust(max_examples=150))
@given(
    user=st.sampled_from(["u1", "u2", 7, True]) | json_values,  # repeated users reach their limit: 429s
    forwarded=st.none() | latin1_text | st.sampled_from(["10.0.0.1", "10.0.0.1, 10.0.0.2", "::1", "[::1]:80", ""]),
    model=json_values | st.sampled_from(["gpt-fake-1", "", "x" * 300]),
    behaviour=behaviours,
    stream=st.booleans(),
)
def test_rate_limit_keys_from_any_text(
    limited: Harness, user: Any, forwarded: str | None, model: Any, behaviour: str, stream: bool
) -> None:
    headers = [*AUTH, (b"cf-aig-metadata", json.dumps({"user": user}, ensure_ascii=False).encode("latin-1", "replace"))]
    if forwarded is not None:
        headers.append((b"x-forwarded-for", forwarded.encode("latin-1")))
    body = json.dumps({"model": model, "messages": [], "stream": stream}).encode()
    answer = limited.request("POST", b"/openai/chat/completions", headers=headers, body=body, behaviour=behaviour)
    assert_well_formed(answer, upstream_broke=behaviour in ("broken_body", "broken_sse"))
    event(f"status {answer.status}")  # --hypothesis-show-statistics: 429s must be among them
    err = answer.envelope_error()
    if err is not None and err[0] == 2003:
        assert answer.header(b"retry-after") and answer.header(b"ratelimit-limit"), answer.headers


# -- clients that go away ---------------------------------------------------------------------------


async def _vanishing_client(harness: Harness, path: bytes, body: bytes, after_parts: int, stop_after: int) -> Answer:
    """Send ``after_parts`` body parts, then report a disconnect; stop reading after ``stop_after`` sends."""
    scope = build_scope("POST", path, b"", [*AUTH, (b"cf-aig-skip-cache", b"true")])
    parts = [body[i : i + 16] for i in range(0, len(body), 16)] or [b""]
    sent: list[dict[str, Any]] = []
    given_parts = 0

    async def receive() -> dict[str, Any]:
        nonlocal given_parts
        if given_parts < min(after_parts, len(parts)):
            given_parts += 1
            return {"type": "http.request", "body": parts[given_parts - 1], "more_body": given_parts < len(parts)}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if len(sent) >= stop_after:
            raise OSError("client went away")  # what a server's send does on a closed socket
        sent.append(message)

    try:
        await asyncio.wait_for(harness.gateway(scope, receive, send), 10)
    except OSError:
        pass  # the send error reaching the server is fine; a hang or another exception is not
    return Answer(sent)


@settings(robust(max_examples=120))
@given(
    path=st.sampled_from([b"/openai/chat/completions", b"/", b"/dynamic/r/chat/completions"]),
    stream=st.booleans(),
    after_parts=st.integers(0, 6),
    stop_after=st.integers(0, 6) | st.just(1000),
    behaviour=behaviours,
)
def test_a_client_that_vanishes_never_crashes_the_gateway(
    limited: Harness, path: bytes, stream: bool, after_parts: int, stop_after: int, behaviour: str
) -> None:
    query = {"model": "gpt-fake-1", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    payload: Any = query
    if path == b"/":
        payload = {"provider": "openai", "endpoint": "chat/completions", "query": query}
    limited.transport.behaviour = behaviour
    errors = _ErrorLog()
    logger = logging.getLogger("aigw_asgi")
    logger.addHandler(errors)
    try:
        answer = limited.runner.run(
            _vanishing_client(limited, path, json.dumps(payload).encode(), after_parts, stop_after)
        )
    finally:
        logger.removeHandler(errors)
    assert len(answer.starts) <= 1
    if answer.starts:
        assert answer.status != 500, answer.body[:300]
    if stop_after > 6:  # only the request side went away: nothing for the gateway to call an error
        assert errors.records == [], [r.getMessage() for r in errors.records]


class _ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
