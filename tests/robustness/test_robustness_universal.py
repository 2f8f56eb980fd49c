"""The universal endpoint (``POST /``) with generated step arrays, valid and not (SPEC §5).

Never a 500; a shape the gateway refuses is a 400 whose message names the field
(``steps[1].config.maxAttempts``), so a client can fix its request without guessing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from tests.robustness.harness import TOKEN, Harness, assert_well_formed, robust
from tests.robustness.strategies import behaviours, json_values, latin1_text

AUTH = [(b"cf-aig-authorization", f"Bearer {TOKEN}".encode()), (b"content-type", b"application/json")]
# "steps[1].config.maxAttempts", 'steps[0][""]' (an odd key, quoted), "body", "path".
FIELD_PATH = re.compile(r'Invalid universal request: (body|path|steps\[\d+\](\.[^\s:\[\]"]+|\["(\\.|[^"\\])*"\])*): ')

_providers = st.sampled_from(["openai", "anthropic", "workers-ai", "groq", "dynamic/r", "dynamic/none", "nope", ""])
_endpoints = st.sampled_from(
    ["chat/completions", "v1/messages", "chat/completions?x=1", "/chat", "../x", "a%2Fb", "a b", "é", "", "x#y"]
)
_header_names = st.sampled_from(["x-a", "authorization", "content-type", "cf-aig-cache-ttl", "cf-aig-skip-cache",
                                 "bad name", "x-a\n", "", "é"]) | st.text(max_size=6)  # fmt: skip
_config = st.dictionaries(
    st.sampled_from(["requestTimeout", "maxAttempts", "retryDelay", "backoff", "other"]),
    st.integers(-2, 6) | st.sampled_from(["linear", "exponential", "fast"]) | json_values,
    max_size=3,
)


@st.composite
def steps(draw: st.DrawFn) -> Any:
    """A valid step with optional parts, then at most one field replaced by something else."""
    step: dict[str, Any] = {
        "provider": draw(st.sampled_from(["openai", "anthropic", "groq", "dynamic/r"])),
        "endpoint": draw(st.sampled_from(["chat/completions", "v1/messages", "chat/completions?x=1"])),
        "query": {"model": "gpt-fake-1", "messages": [{"role": "user", "content": "hi"}]},
    }
    if draw(st.booleans()):
        step["headers"] = draw(st.dictionaries(_header_names, latin1_text | json_values, max_size=3))
    if draw(st.booleans()):
        step["config"] = draw(_config)
    if draw(st.booleans()):
        step["method"] = draw(st.sampled_from(["POST", "GET", "DELETE", "post", "TRACE"]))
    mutate = draw(st.sampled_from([None, None, "provider", "endpoint", "headers", "query", "config", "method", "+"]))
    if mutate == "+":
        step[draw(st.sampled_from(["authorization", "eventId", "x", ""]) | st.text(max_size=6))] = draw(json_values)
    elif mutate is not None:
        step[mutate] = draw(_providers | _endpoints | json_values)
    return step


payloads = (
    st.lists(steps(), max_size=4) | steps() | json_values | st.lists(st.just({"provider": "openai"}), min_size=17)
)


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    assert h.close() == [], "tasks left running after aclose()"


@settings(robust(max_examples=300))
@given(payload=payloads, behaviour=behaviours)
def test_generated_steps_never_500_and_refusals_name_the_field(harness: Harness, payload: Any, behaviour: str) -> None:
    body = json.dumps(payload, ensure_ascii=False).encode()
    answer = harness.request("POST", b"/", headers=AUTH, body=body, behaviour=behaviour)
    assert_well_formed(answer, upstream_broke=behaviour in ("broken_body", "broken_sse"))
    err = answer.envelope_error()
    if err is not None and err[0] == 2004:
        assert answer.status == 400 and FIELD_PATH.match(err[1]), err


@settings(robust(max_examples=60))
@given(body=st.binary(max_size=100) | st.sampled_from([b"[", b"{}", b"[]", b"null", b"", b"[{}]", b"\xff"]))
def test_malformed_universal_bodies_are_a_400_naming_the_body(harness: Harness, body: bytes) -> None:
    answer = harness.request("POST", b"/", headers=AUTH, body=body)
    assert_well_formed(answer)
    err = answer.envelope_error()
    assert err is not None and answer.status == 400 and err[0] == 2004 and FIELD_PATH.match(err[1]), (
        answer.status,
        answer.body[:300],
    )
