"""Load balancing under real uvicorn: provider keys, named routes, and the SDK on a dynamic route."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai

from tests.fakes.upstream import RunningFake

MESSAGES = [{"role": "user", "content": "hello"}]
KEYS = [{"alias": "a", "key": "sk-a"}, {"alias": "b", "key": "sk-b"}, {"alias": "c", "key": "sk-c"}]


def route(strategy: str, *targets: dict[str, Any]) -> dict[str, Any]:
    return {"strategy": strategy, "targets": list(targets)}


def hammer(url: str, path: str, n: int, body: Any) -> list[httpx.Response]:
    """``n`` requests, 10 at a time (concurrency is the point of the fairness tests)."""
    with httpx.Client(base_url=url, timeout=10) as client, ThreadPoolExecutor(10) as pool:
        return list(pool.map(lambda _: client.post(path, json=body), range(n)))


def test_round_robin_spreads_100_requests_over_3_keys(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway(providers={"openai": {"api_keys": KEYS}})
    step = {"provider": "openai", "endpoint": "chat/completions", "query": {"model": "m", "messages": MESSAGES}}
    native = hammer(server.url, "/openai/chat/completions", 60, {"model": "m", "messages": MESSAGES})
    universal = hammer(server.url, "/", 40, [step])
    assert all(r.status_code == 200 for r in native + universal)
    used = Counter(r.headers["authorization"] for r in fake_upstream.app.requests)
    assert sorted(used.values()) == [33, 33, 34] and set(used) == {"Bearer sk-a", "Bearer sk-b", "Bearer sk-c"}


def test_round_robin_route_spreads_100_requests_over_3_targets(make_gateway, fake_upstream: RunningFake) -> None:
    targets = [{"provider": "openai", "model": f"m{i}"} for i in range(3)]
    _, server = make_gateway(routes={"rr": route("round-robin", *targets)})
    responses = hammer(server.url, "/dynamic/rr/chat/completions", 100, {"model": "any", "messages": MESSAGES})
    assert all(r.status_code == 200 for r in responses)
    assert sorted(Counter(r.headers["cf-aig-model"] for r in responses).values()) == [33, 33, 34]
    assert sorted(Counter(r.model for r in fake_upstream.app.requests).values()) == [33, 33, 34]


def test_weighted_route_splits_by_weight(make_gateway, fake_upstream: RunningFake) -> None:
    targets = [{"provider": "openai", "model": "heavy", "weight": 3}, {"provider": "openai", "model": "light"}]
    _, server = make_gateway(routes={"w": route("weighted", *targets)})
    responses = hammer(server.url, "/dynamic/w/chat/completions", 100, {"model": "any", "messages": MESSAGES})
    split = Counter(r.headers["cf-aig-model"] for r in responses)
    assert abs(split["heavy"] - 75) <= 5 and split["heavy"] + split["light"] == 100


def test_a_route_falls_back_to_its_next_target_and_says_who_served(make_gateway, fake_upstream: RunningFake) -> None:
    targets = [
        {"provider": "openai", "model": "broken", "alias": "b"},
        # Targets with another wire format name their own endpoint.
        {"provider": "anthropic", "model": "claude-fake-1", "endpoint": "messages"},
    ]
    _, server = make_gateway(
        providers={"openai": {"api_keys": KEYS}, "anthropic": {"api_key": "sk-ant"}},
        routes={"fb": route("fallback", *targets)},
    )
    fake_upstream.app.fail(500, times=None, model="broken")
    step = {"provider": "dynamic/fb", "endpoint": "chat/completions", "query": {"messages": MESSAGES, "max_tokens": 5}}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        resp = client.post("/", json=[step])
    assert resp.status_code == 200 and resp.json()["type"] == "message"
    assert resp.headers["cf-aig-step"] == "1" and resp.headers["cf-aig-provider"] == "anthropic"
    assert resp.headers["cf-aig-model"] == "claude-fake-1"
    broken, last = fake_upstream.app.requests
    assert broken.path == "/v1/chat/completions" and broken.headers["authorization"] == "Bearer sk-b"  # its alias
    assert last.path == "/v1/messages" and last.headers["x-api-key"] == "sk-ant"


def test_least_latency_prefers_the_fast_target_and_recovers_the_slow_one(
    make_gateway, fake_upstream: RunningFake
) -> None:
    targets = [{"provider": "openai", "model": "a"}, {"provider": "openai", "model": "b"}]
    _, server = make_gateway(routes={"ll": route("least-latency", *targets)})
    body = {"model": "any", "messages": MESSAGES}

    def served(n: int) -> list[str]:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            return [client.post("/dynamic/ll/chat/completions", json=body).headers["cf-aig-model"] for _ in range(n)]

    fake_upstream.app.steer(times=None, model="a", delay_s=0.12)
    first = served(25)
    assert Counter(first)["b"] >= 20, first  # a is measured, then only looked at now and then
    fake_upstream.app.reset()  # a heals …
    fake_upstream.app.steer(times=None, model="b", delay_s=0.12)  # … and b gets slow
    second = served(50)
    assert Counter(second[-10:])["a"] >= 8, (first, second)


def test_least_latency_moves_off_a_failing_target(make_gateway, fake_upstream: RunningFake) -> None:
    targets = [{"provider": "openai", "model": "a"}, {"provider": "openai", "model": "b"}]
    _, server = make_gateway(routes={"ll": route("least-latency", *targets)})
    fake_upstream.app.fail(503, times=None, model="a", retry_after=None)
    responses = hammer(server.url, "/dynamic/ll/chat/completions", 20, {"model": "x", "messages": MESSAGES})
    assert all(r.status_code == 200 and r.headers["cf-aig-model"] == "b" for r in responses)
    tried_a = [r for r in fake_upstream.app.requests if r.model == "a"]
    assert len(tried_a) <= 5  # penalised at once, then circuit-broken: a is not asked every time


def test_openai_sdk_against_a_dynamic_route(make_gateway, fake_upstream: RunningFake) -> None:
    targets = [{"provider": "openai", "model": "gpt-4o"}, {"provider": "openai", "model": "gpt-4o-mini"}]
    _, server = make_gateway(routes={"chat": route("fallback", *targets)})
    fake_upstream.app.fail(429, times=None, model="gpt-4o", retry_after=None)
    client = openai.OpenAI(base_url=f"{server.url}/dynamic/chat", api_key="sk-client", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="whatever", messages=MESSAGES)
    assert raw.parse().model == "gpt-4o-mini"
    assert raw.headers["cf-aig-model"] == "gpt-4o-mini" and raw.headers["cf-aig-provider"] == "openai"
    assert raw.headers["cf-aig-step"] == "1"
    chunks = client.chat.completions.create(model="whatever", messages=MESSAGES, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "chunk0 chunk1 chunk2 chunk3 chunk4 "
    )
    assert fake_upstream.app.last.headers["authorization"] == "Bearer sk-client"
