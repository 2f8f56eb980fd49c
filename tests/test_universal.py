"""Universal request parsing and step planning, without ASGI: every bad field is named."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aigw_asgi.config import RouteConfig, RouteTarget
from aigw_asgi.errors import InvalidProvider, InvalidRequest
from aigw_asgi.routing.balance import compile_routes
from aigw_asgi.steps import expand, parse_steps

PROVIDERS = {"openai", "anthropic", "workers-ai"}
ROUTES = compile_routes(
    {
        "chat": RouteConfig(
            targets=[RouteTarget("openai", "gpt-4o-mini", alias="team-b"), RouteTarget("anthropic", "claude-fake-1")],
            strategy="round-robin",
        ),
        "wai": RouteConfig(targets=[RouteTarget("workers-ai", "m", endpoint="@cf/meta/m")]),
    }
)
STEP = {"provider": "openai", "endpoint": "chat/completions", "query": {"model": "m", "messages": []}}


def plan(payload: Any) -> list[Any]:
    return expand(parse_steps(payload, PROVIDERS, ROUTES), ROUTES)


def test_one_object_is_one_step_and_config_becomes_headers() -> None:
    step = {
        **STEP,
        "headers": {"Authorization": "Bearer sk", "cf-aig-cache-ttl": 120, "X-Flag": True, "X-Obj": {"a": 1}},
        "config": {"requestTimeout": 1500, "maxAttempts": 3, "retryDelay": 0, "backoff": "linear"},
    }
    [planned] = plan(step)
    assert (planned.provider, planned.path, planned.query_string, planned.method) == (
        "openai",
        "chat/completions",
        b"",
        "POST",
    )
    assert json.loads(planned.body) == STEP["query"]
    assert dict(planned.headers) == {
        b"authorization": b"Bearer sk",
        b"cf-aig-cache-ttl": b"120",
        b"x-flag": b"true",
        b"x-obj": b'{"a":1}',
        b"cf-aig-request-timeout": b"1500",
        b"cf-aig-max-attempts": b"3",
        b"cf-aig-retry-delay": b"0",
        b"cf-aig-backoff": b"linear",
    }


def test_config_beats_the_steps_own_headers_and_framing_headers_are_ours() -> None:
    step = {
        **STEP,
        "headers": {"cf-aig-max-attempts": "1", "Content-Length": "9", "Host": "evil"},
        "config": {"maxAttempts": 4},
    }
    [planned] = plan([step])
    assert dict(planned.headers) == {b"cf-aig-max-attempts": b"4"}


def test_endpoint_query_string_is_kept() -> None:
    [planned] = plan([{**STEP, "endpoint": "models/g:streamGenerateContent?alt=sse"}])
    assert (planned.path, planned.query_string) == ("models/g:streamGenerateContent", b"alt=sse")


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ("nope", "body"),
        ([], "body"),
        ([STEP] * 17, "body"),
        ([STEP, 3], "steps[1]"),
        ([{**STEP, "provider": ""}], "steps[0].provider"),
        ([{**STEP, "endpoint": "/v1/chat"}], "steps[0].endpoint"),
        ([{**STEP, "endpoint": "../../admin"}], "steps[0].endpoint"),
        ([{**STEP, "endpoint": "a/%2e%2e/b"}], "steps[0].endpoint"),
        ([{**STEP, "endpoint": "http://evil/x"}], "steps[0].endpoint"),
        ([{**STEP, "endpoint": "a%2Fb"}], "steps[0].endpoint"),
        ([{**STEP, "endpoint": "a b"}], "steps[0].endpoint"),
        ([{**STEP, "endpoint": 5}], "steps[0].endpoint"),
        ([{k: v for k, v in STEP.items() if k != "endpoint"}], "steps[0].endpoint"),
        ([{k: v for k, v in STEP.items() if k != "query"}], "steps[0].query"),
        ([{**STEP, "headers": ["a"]}], "steps[0].headers"),
        ([{**STEP, "headers": {"bad name": "x"}}], "steps[0].headers"),
        ([{**STEP, "headers": {"x-a\n": "x"}}], "steps[0].headers"),  # "$" alone matched before a final newline
        ([{**STEP, "headers": {"x-a": "a\r\nb: c"}}], "steps[0].headers.x-a"),
        ([{**STEP, "headers": {"x-a": None}}], "steps[0].headers.x-a"),
        ([{**STEP, "headers": {"cf-aig-cache-ttl": "5"}}], "steps[0].headers"),
        ([STEP, {**STEP, "config": {"maxAttempts": 9}}], "steps[1].config.maxAttempts"),
        ([{**STEP, "config": {"maxAttempts": True}}], "steps[0].config.maxAttempts"),
        ([{**STEP, "config": {"retryDelay": 5001}}], "steps[0].config.retryDelay"),
        ([{**STEP, "config": {"requestTimeout": 0}}], "steps[0].config.requestTimeout"),
        ([{**STEP, "config": {"backoff": "fibonacci"}}], "steps[0].config.backoff"),
        ([{**STEP, "config": {"timeout": 5}}], "steps[0].config.timeout"),
        ([{**STEP, "config": []}], "steps[0].config"),
        ([{**STEP, "extra": 1}], "steps[0].extra"),
        ([{**STEP, "": 1}], 'steps[0][""]'),
        ([{**STEP, "a: b": 1}], 'steps[0]["a: b"]'),
        ([{**STEP, "config": {"": 5}}], 'steps[0].config[""]'),
        ([{**STEP, "method": "TRACE"}], "steps[0].method"),
        ([{**STEP, "method": ["POST"]}], "steps[0].method"),  # unhashable: was a TypeError, a 500
        ([{**STEP, "method": {}}], "steps[0].method"),
        ([{**STEP, "provider": "dynamic/chat", "query": ["x"]}], "steps[0].query"),
    ],
)
def test_validation_errors_name_the_field(payload: Any, named: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        plan(payload)
    assert info.value.code == 2004
    assert f"{named}:" in info.value.message or f"{named}." in info.value.message, info.value.message


def test_an_odd_unknown_key_is_quoted_and_capped() -> None:
    with pytest.raises(InvalidRequest) as info:
        plan([{**STEP, "k" * 10_000: 1}])
    assert info.value.message == f'Invalid universal request: steps[0]["{"k" * 64}"]: unknown key'


@pytest.mark.parametrize("provider", ["nope", "dynamic/nope", "custom-missing"])
def test_unknown_provider_or_route_is_2008_naming_the_step(provider: str) -> None:
    with pytest.raises(InvalidProvider) as info:
        plan([STEP, {**STEP, "provider": provider}])
    assert info.value.code == 2008 and "steps[1].provider" in info.value.message


def test_dynamic_route_expands_into_its_targets_in_selector_order() -> None:
    payload = [{"provider": "dynamic/chat", "endpoint": "chat/completions", "query": {"model": "x", "n": 1}}, STEP]
    first = plan(payload)
    assert [(p.provider, p.model, p.target, p.source) for p in first] == [
        ("openai", "gpt-4o-mini", 0, 0),
        ("anthropic", "claude-fake-1", 1, 0),
        ("openai", None, None, 1),
    ]
    assert json.loads(first[0].body) == {"model": "gpt-4o-mini", "n": 1}  # the target's model wins
    assert dict(first[0].headers)[b"cf-aig-byok-alias"] == b"team-b"
    assert b"cf-aig-byok-alias" not in dict(first[1].headers)
    second = plan(payload)  # round-robin: the next request starts at the other target
    assert [p.model for p in second[:2]] == ["claude-fake-1", "gpt-4o-mini"]


def test_a_target_endpoint_beats_the_steps_and_a_dynamic_step_needs_one() -> None:
    [planned] = plan({"provider": "dynamic/wai", "query": {"messages": []}})
    assert (planned.provider, planned.path) == ("workers-ai", "@cf/meta/m")
    with pytest.raises(InvalidRequest, match=r"steps\[0\]\.endpoint"):
        plan({"provider": "dynamic/chat", "query": {}})


def test_get_steps_need_no_query() -> None:
    [planned] = plan({"provider": "openai", "endpoint": "models", "method": "GET"})
    assert (planned.method, planned.body) == ("GET", b"")


@pytest.mark.parametrize("path", ["/", "/dynamic/chat/chat/completions"])
async def test_a_client_gone_before_its_body_ended_is_a_499_not_an_unhandled_error(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by tests/robustness: read_body's ClientDisconnected escaped the universal layer, so the
    gateway logged an "unhandled error" with a traceback and recorded a 500 for a vanished client."""
    from aigw_asgi import Gateway
    from aigw_asgi.config import config_from_dict

    gateway = Gateway(
        config_from_dict(
            {
                "logs": {"store": "memory://"},
                "routes": {"chat": {"targets": [{"provider": "openai", "model": "m"}]}},
            }
        )
    )
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 1),
    }
    messages = [{"type": "http.request", "body": b'[{"provider":', "more_body": True}, {"type": "http.disconnect"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    try:
        await gateway(scope, receive, send)
    finally:
        await gateway.aclose()
    assert sent == []
    assert scope["state"]["aigw"].status_code == 499
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
