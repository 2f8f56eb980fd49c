"""Bad input never gets a 500: generated requests against the whole pipeline, in-process.

Each property drives one `Gateway` (auth, cache, rate limit, logs, a route: all on) on a canned
upstream whose behaviour each example draws, and checks what SPEC §2-§4 promise for any input:
one complete response, never a 500, gateway errors in the Cloudflare envelope with a known code
and the matching status, ``cf-aig-log-id`` on every answer, no secret in any answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import given, settings, strategies as st

from tests.robustness.harness import (
    ADMIN_TOKEN,
    PROVIDER_KEY,
    TOKEN,
    Harness,
    assert_no_secrets,
    assert_well_formed,
    robust,
)
from tests.robustness.strategies import behaviours, bodies, header_lists, json_values, methods, queries, raw_paths

BROKEN = {"broken_body", "broken_sse"}


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    pending = h.close()
    assert pending == [], f"tasks left running after aclose(): {pending}"


@settings(robust(max_examples=400))
@given(
    method=methods,
    raw_path=raw_paths(),
    query=queries,
    headers=header_lists(),
    body=bodies,
    chunk=st.sampled_from([0, 0, 1, 7, 1024]),
    behaviour=behaviours,
)
def test_any_request_gets_one_complete_well_formed_answer(
    harness: Harness,
    method: str,
    raw_path: bytes,
    query: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    chunk: int,
    behaviour: str,
) -> None:
    answer = harness.request(
        method, raw_path, query=query, headers=headers, body=body, chunk_size=chunk, behaviour=behaviour
    )
    assert_well_formed(answer, upstream_broke=behaviour in BROKEN, admin=raw_path.startswith(b"/admin"))


@settings(robust(max_examples=150))
@given(
    endpoint=st.sampled_from(
        [
            "/openai/chat/completions",
            "/anthropic/v1/messages",
            "/openai/v1/embeddings",
            "/google-ai-studio/v1beta/models/gemini-fake:generateContent",
        ]
    ),
    headers=header_lists(),
    body=bodies,
    behaviour=behaviours,
    fresh=st.booleans(),
)
def test_plausible_provider_requests_are_well_formed(
    harness: Harness, endpoint: str, headers: list[tuple[bytes, bytes]], body: bytes, behaviour: str, fresh: bool
) -> None:
    """Real endpoints, so generated bodies and headers reach the cache, rate limit and router.

    ``fresh`` skips the cache read, so the drawn upstream behaviour is met rather than a stored answer.
    """
    if fresh:
        headers = [*headers, (b"cf-aig-skip-cache", b"true")]
    answer = harness.request("POST", endpoint.encode(), headers=headers, body=body, behaviour=behaviour)
    assert_well_formed(answer, upstream_broke=behaviour in BROKEN)


_sse_lines = st.sampled_from([b"data: ", b"event: ", b": ", b"\n", b"\r\n", b"\n\n", b"[DONE]", b"id: 1", b"retry: x"])
_upstream_bodies = st.lists(
    st.binary(max_size=40)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.builds(lambda a, b: a + b, _sse_lines, json_values.map(lambda v: json.dumps(v).encode()))
    | _sse_lines,
    max_size=8,
)


@settings(robust(max_examples=150))
@given(
    endpoint=st.sampled_from(
        [
            b"/openai/chat/completions",
            b"/anthropic/v1/messages",
            b"/workers-ai/@cf/meta/m",
            b"/google-ai-studio/v1beta/models/g:streamGenerateContent",
            b"/ollama/api/chat",
            b"/cohere/v2/chat",
            b"/",
        ]
    ),  # fmt: skip
    status=st.sampled_from([200, 200, 201, 204, 400, 429, 503]),
    content_type=st.sampled_from(
        [
            b"application/json",
            b"text/event-stream",
            b"application/x-ndjson",
            b"text/event-stream; charset=utf-8",
            b"text/plain",
            b"",
        ]
    ),  # fmt: skip
    chunks=_upstream_bodies,
    stream=st.booleans(),
)
def test_garbage_from_the_upstream_is_relayed_not_a_500(
    harness: Harness, endpoint: bytes, status: int, content_type: bytes, chunks: list[bytes], stream: bool
) -> None:
    """Usage extraction, SSE parsing and caching meet whatever a broken provider sends."""
    body = json.dumps({"model": "m", "messages": [], "stream": stream}).encode()
    if endpoint == b"/":
        body = json.dumps({"provider": "openai", "endpoint": "chat/completions", "query": json.loads(body)}).encode()
    headers = [(b"cf-aig-authorization", f"Bearer {TOKEN}".encode()), (b"cf-aig-skip-cache", b"true")]
    answer = harness.request("POST", endpoint, headers=headers, body=body, garbage=(status, content_type, chunks))
    assert_well_formed(answer)
    if endpoint != b"/" or status < 300:  # the universal endpoint answers an upstream's own error itself
        assert answer.status == status, (answer.status, answer.body[:300])


@settings(robust(max_examples=60))
@given(body=bodies, behaviour=behaviours, stream=st.booleans())
def test_secrets_never_appear_in_answers(harness: Harness, body: bytes, behaviour: str, stream: bool) -> None:
    """The token and the provider key go in (header, injected credential) and never come out."""
    headers = [(b"cf-aig-authorization", f"Bearer {TOKEN}".encode()), (b"content-type", b"application/json")]
    answer = harness.request("POST", b"/openai/chat/completions", headers=headers, body=body, behaviour=behaviour)
    assert_well_formed(answer, upstream_broke=behaviour in BROKEN)
    if harness.transport.requests:  # the key was injected upstream, so it was in play
        assert any(PROVIDER_KEY in v for _, v in harness.transport.requests[-1][2])


@settings(robust(max_examples=40))
@given(
    body=st.sampled_from([b"", b"{", b'{"model":"gpt-fake-1","messages":[]}'])
    | st.builds(
        lambda pre: json.dumps({"model": "gpt-fake-1", "note": f"{pre}{TOKEN} and {PROVIDER_KEY}"}).encode(),
        st.sampled_from(["", "Bearer ", "key=", "x"]),
    ),  # fmt: skip
    behaviour=behaviours,
    path=st.sampled_from([b"/openai/chat/completions", b"/", b"/dynamic/r/chat/completions"]),
)
def test_secrets_never_appear_in_log_rows(harness: Harness, body: bytes, behaviour: str, path: bytes) -> None:
    """What the admin API shows of a request (rows and stored bodies) holds no token and no key,
    even when a client pasted them into its body or the provider quoted the key back."""
    if path == b"/":
        body = json.dumps({"provider": "openai", "endpoint": "chat/completions", "query": body.decode()}).encode()
    headers = [(b"cf-aig-authorization", f"Bearer {TOKEN}".encode()), (b"cf-aig-skip-cache", b"true")]
    answer = harness.request("POST", path, headers=headers, body=body, behaviour=behaviour)
    log_id = (answer.header(b"cf-aig-log-id") or b"").decode()
    admin = [(b"authorization", f"Bearer {ADMIN_TOKEN}".encode())]
    for view in (b"", b"/request", b"/response"):
        shown = harness.request("GET", f"/admin/logs/{log_id}".encode() + view, headers=admin)
        assert shown.status == 200 if not view else shown.status in (200, 404), (shown.status, shown.body[:300])
        assert_no_secrets(shown)
    assert_no_secrets(harness.request("GET", b"/admin/logs", query=b"per_page=100", headers=admin))
