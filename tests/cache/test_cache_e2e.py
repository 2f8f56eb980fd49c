"""The cache inside the Gateway, under real uvicorn, driven by the official SDKs and raw HTTP."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.fakes.upstream import RunningFake
from tests.servers import RedisServer

MESSAGES = [{"role": "user", "content": "hello"}]
CHAT = {"model": "gpt-4o-mini", "messages": MESSAGES}


def chat_requests(fake: RunningFake) -> int:
    return sum(1 for r in fake.app.requests if r.path.endswith("/chat/completions"))


def test_second_identical_call_is_a_hit(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway(cache={"ttl": 300})
    client = openai.OpenAI(base_url=f"{server.url}/openai", api_key="sk-a", max_retries=0)
    first = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    second = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert first.headers["cf-aig-cache-status"] == "MISS"
    assert second.headers["cf-aig-cache-status"] == "HIT"
    assert second.parse().id == first.parse().id  # the same answer, not a fresh one
    assert second.parse().choices[0].message.content == "chunk0 chunk1 chunk2 chunk3 chunk4 "
    assert second.headers["content-type"] == first.headers["content-type"]
    assert second.headers["cf-aig-provider"] == "openai" and second.headers["cf-aig-model"] == "gpt-4o-mini"
    assert second.headers["cf-aig-log-id"] != first.headers["cf-aig-log-id"]  # a new request, a new row
    assert chat_requests(fake_upstream) == 1


def test_the_same_upstream_url_is_one_entry_with_or_without_the_version(
    make_gateway, fake_upstream: RunningFake
) -> None:
    _, server = make_gateway(cache={"ttl": 300})
    with (
        openai.OpenAI(base_url=f"{server.url}/openai", api_key="sk-a", max_retries=0) as first,
        openai.OpenAI(base_url=f"{server.url}/openai/v1", api_key="sk-a", max_retries=0) as second,
    ):
        assert first.chat.completions.with_raw_response.create(**CHAT).headers["cf-aig-cache-status"] == "MISS"
        assert second.chat.completions.with_raw_response.create(**CHAT).headers["cf-aig-cache-status"] == "HIT"
    assert chat_requests(fake_upstream) == 1


def test_no_ttl_means_no_cache_but_the_header_says_miss(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway()
    client = openai.OpenAI(base_url=f"{server.url}/openai", api_key="sk-a", max_retries=0)
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
        assert raw.headers["cf-aig-cache-status"] == "MISS"
    assert chat_requests(fake_upstream) == 2


def test_ttl_header_opts_in_and_skip_cache_refreshes(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway()
    client = openai.OpenAI(
        base_url=f"{server.url}/openai", api_key="sk-a", max_retries=0, default_headers={"cf-aig-cache-ttl": "60"}
    )
    first = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).id == first.id
    fresh = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers={"cf-aig-skip-cache": "true"}
    )
    assert fresh.headers["cf-aig-cache-status"] == "MISS" and fresh.parse().id != first.id
    # skip-cache did not read, but stored its fresh answer: the next call gets that one.
    assert client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).id == fresh.parse().id
    assert chat_requests(fake_upstream) == 2


def test_differing_user_field_gets_separate_entries(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway(cache={"ttl": 300})
    client = openai.OpenAI(base_url=f"{server.url}/openai", api_key="sk-a", max_retries=0)
    alice = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, user="alice")
    bob = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, user="bob")
    assert alice.id != bob.id and chat_requests(fake_upstream) == 2
    assert client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, user="alice").id == alice.id
    assert chat_requests(fake_upstream) == 2


def test_different_api_keys_never_share(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway(cache={"ttl": 300})
    for key in ("sk-tenant-a", "sk-tenant-b"):
        client = openai.OpenAI(base_url=f"{server.url}/openai", api_key=key, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
        assert raw.headers["cf-aig-cache-status"] == "MISS"
    assert chat_requests(fake_upstream) == 2


def test_json_key_order_does_not_matter_but_metadata_is_ignored(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway(cache={"ttl": 300})
    url = f"{server.url}/openai/chat/completions"
    headers = {"authorization": "Bearer sk-a", "content-type": "application/json"}
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "temperature": 0}
    first = httpx.post(url, content=json.dumps(body), headers={**headers, "cf-aig-metadata": '{"u":"1"}'})
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=2)
    second = httpx.post(url, content=reordered, headers={**headers, "cf-aig-metadata": '{"u":"2"}'})
    assert first.headers["cf-aig-cache-status"] == "MISS"
    assert second.headers["cf-aig-cache-status"] == "HIT" and second.content == first.content
    changed = httpx.post(url, content=json.dumps({**body, "temperature": 1}), headers=headers)
    assert changed.headers["cf-aig-cache-status"] == "MISS"
    assert chat_requests(fake_upstream) == 2


def test_stream_is_cached_and_replayed_byte_identically(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway(cache={"ttl": 300})
    url = f"{server.url}/openai/chat/completions"
    body = {**CHAT, "stream": True}
    headers = {"authorization": "Bearer sk-a"}
    first = httpx.post(url, json=body, headers=headers)
    second = httpx.post(url, json=body, headers=headers)
    assert first.headers["cf-aig-cache-status"] == "MISS" and second.headers["cf-aig-cache-status"] == "HIT"
    assert second.headers["content-type"] == first.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert second.content == first.content and first.content.endswith(b"data: [DONE]\n\n")
    # Streamed and non-streamed requests never share an entry.
    plain = httpx.post(url, json=CHAT, headers=headers)
    assert plain.headers["cf-aig-cache-status"] == "MISS" and plain.headers["content-type"].startswith(
        "application/json"
    )
    assert chat_requests(fake_upstream) == 2
    # And the replay is a real stream for the SDK.
    client = openai.OpenAI(base_url=f"{server.url}/openai", api_key="sk-a", max_retries=0)
    words = [
        c.choices[0].delta.content
        for c in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        if c.choices and c.choices[0].delta.content
    ]
    assert words == [f"chunk{i} " for i in range(5)] and chat_requests(fake_upstream) == 2


def test_anthropic_stream_replayed_through_the_sdk(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway(cache={"ttl": 300})
    client = anthropic.Anthropic(base_url=f"{server.url}/anthropic", api_key="sk-ant", max_retries=0)

    def run() -> str:
        with client.messages.stream(model="claude-fake-1", max_tokens=50, messages=MESSAGES) as stream:
            return "".join(stream.text_stream)

    assert run() == run() == "chunk0 chunk1 chunk2 chunk3 chunk4 "
    assert sum(1 for r in fake_upstream.app.requests if r.path == "/v1/messages") == 1


def test_interrupted_stream_is_not_cached(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway(cache={"ttl": 300})
    url = f"{server.url}/openai/chat/completions"
    body = {**CHAT, "stream": True}
    fake_upstream.app.steer(times=1, break_after=2)
    broken = httpx.post(url, json=body, headers={"authorization": "Bearer sk-a"})
    assert broken.status_code == 200 and b"[DONE]" not in broken.content  # cut, ended with an error event
    whole = httpx.post(url, json=body, headers={"authorization": "Bearer sk-a"})
    assert whole.headers["cf-aig-cache-status"] == "MISS" and whole.content.endswith(b"data: [DONE]\n\n")
    again = httpx.post(url, json=body, headers={"authorization": "Bearer sk-a"})
    assert again.headers["cf-aig-cache-status"] == "HIT" and again.content == whole.content
    assert chat_requests(fake_upstream) == 2


def test_errors_are_not_cached(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway(cache={"ttl": 300})
    url = f"{server.url}/openai/chat/completions"
    fake_upstream.app.fail(429, times=1)
    assert httpx.post(url, json=CHAT).status_code == 429
    ok = httpx.post(url, json=CHAT)
    assert ok.status_code == 200 and ok.headers["cf-aig-cache-status"] == "MISS"
    assert chat_requests(fake_upstream) == 2


def test_custom_key_shares_across_bodies_but_not_stream_modes(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway()  # gateway TTL 0: the custom key alone opts in (300 s)
    url = f"{server.url}/openai/chat/completions"
    headers = {"cf-aig-cache-key": "greeting-v1"}
    first = httpx.post(url, json=CHAT, headers=headers)
    other_body = httpx.post(url, json={**CHAT, "temperature": 1.5}, headers=headers)
    assert other_body.headers["cf-aig-cache-status"] == "HIT" and other_body.content == first.content
    streamed = httpx.post(url, json={**CHAT, "stream": True}, headers=headers)
    assert streamed.headers["cf-aig-cache-status"] == "MISS"
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert chat_requests(fake_upstream) == 2


TENANTS = {
    "authentication": True,
    "tokens": [{"name": "tenant-a", "token": "tok-tenant-a-1234"}, {"name": "tenant-b", "token": "tok-tenant-b-5678"}],
}


def _as(tenant: str, **headers: str) -> dict[str, str]:
    return {"cf-aig-authorization": f"Bearer tok-{tenant}-{'1234' if tenant == 'tenant-a' else '5678'}", **headers}


@pytest.mark.parametrize("share", [False, True])
def test_a_tenants_custom_key_never_answers_another_tenant(
    make_gateway, fake_upstream: RunningFake, share: bool
) -> None:
    """Issue 11 defect 5: two gateway tokens on one stored provider key; tenant A poisons ``faq-1``."""
    _, server = make_gateway(
        gateway=TENANTS, cache={"share_across_tokens": share}, providers={"openai": {"api_key": "sk-stored"}}
    )
    url = f"{server.url}/openai/chat/completions"
    poisoned = {**CHAT, "messages": [{"role": "user", "content": "say something wrong"}]}
    a = httpx.post(url, json=poisoned, headers=_as("tenant-a", **{"cf-aig-cache-key": "faq-1"}))
    assert a.status_code == 200 and a.headers["cf-aig-cache-status"] == "MISS"
    b = httpx.post(url, json=CHAT, headers=_as("tenant-b", **{"cf-aig-cache-key": "faq-1"}))
    assert b.status_code == 200 and b.headers["cf-aig-cache-status"] == "MISS"
    assert chat_requests(fake_upstream) == 2
    assert fake_upstream.app.requests[-1].json == CHAT  # B's own question went to the provider
    # Each tenant still hits its own entry.
    again = httpx.post(url, json=CHAT, headers=_as("tenant-b", **{"cf-aig-cache-key": "faq-1"}))
    assert again.headers["cf-aig-cache-status"] == "HIT" and again.content == b.content


@pytest.mark.parametrize(("share", "hit"), [(False, "MISS"), (True, "HIT")])
def test_body_derived_entries_are_per_token_unless_shared(
    make_gateway, fake_upstream: RunningFake, share: bool, hit: str
) -> None:
    _, server = make_gateway(
        gateway=TENANTS,
        cache={"ttl": 300, "share_across_tokens": share},
        providers={"openai": {"api_key": "sk-stored"}},
    )
    url = f"{server.url}/openai/chat/completions"
    assert httpx.post(url, json=CHAT, headers=_as("tenant-a")).headers["cf-aig-cache-status"] == "MISS"
    assert httpx.post(url, json=CHAT, headers=_as("tenant-b")).headers["cf-aig-cache-status"] == hit
    assert httpx.post(url, json=CHAT, headers=_as("tenant-a")).headers["cf-aig-cache-status"] == "HIT"


@pytest.mark.parametrize(
    ("name", "value"),
    [("cf-aig-cache-ttl", "59"), ("cf-aig-cache-ttl", "abc"), ("cf-aig-skip-cache", "maybe")],
)
def test_invalid_cache_headers_are_400(make_gateway, fake_upstream: RunningFake, name: str, value: str) -> None:
    _, server = make_gateway(cache={"ttl": 300})
    resp = httpx.post(f"{server.url}/openai/chat/completions", json=CHAT, headers={name: value})
    assert resp.status_code == 400
    error = resp.json()["error"][0]
    assert error["code"] == 2004 and name in error["message"]
    assert resp.headers["cf-aig-cache-status"] == "MISS"
    assert chat_requests(fake_upstream) == 0


def test_purge_all_by_provider_and_by_key(make_gateway, fake_upstream: RunningFake) -> None:
    gateway, server = make_gateway(cache={"ttl": 300})
    url = f"{server.url}/openai/chat/completions"
    for temperature in (0, 1):
        httpx.post(url, json={**CHAT, "temperature": temperature})
    httpx.post(f"{server.url}/groq/chat/completions", json=CHAT)
    assert asyncio.run(gateway.cache.purge(provider="openai")) == 2
    assert httpx.post(url, json={**CHAT, "temperature": 0}).headers["cf-aig-cache-status"] == "MISS"
    groq = httpx.post(f"{server.url}/groq/chat/completions", json=CHAT)
    assert groq.headers["cf-aig-cache-status"] == "HIT"
    key = next(k for k in gateway.cache.storage._entries if k.startswith("groq:"))
    assert asyncio.run(gateway.cache.purge(key=key)) == 1
    assert asyncio.run(gateway.cache.purge(key=key)) == 0
    assert asyncio.run(gateway.cache.purge()) == 1  # the openai entry stored again above


def test_50_concurrent_identical_requests_make_one_upstream_call(
    make_gateway, fake_upstream: RunningFake, serve
) -> None:
    gateway, _ = make_gateway(cache={"ttl": 300})
    arrived = 0
    lock = threading.Lock()

    async def counting(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal arrived
        if scope["type"] == "http":
            with lock:
                arrived += 1
        await gateway(scope, receive, send)

    server = serve(counting)
    fake_upstream.app.hang = True  # hold the one upstream call until every client is waiting

    def call(_: int) -> httpx.Response:
        return httpx.post(f"{server.url}/openai/chat/completions", json=CHAT, timeout=30)

    with ThreadPoolExecutor(50) as pool:
        futures = [pool.submit(call, i) for i in range(50)]
        deadline = time.monotonic() + 15
        while arrived < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert arrived == 50
        time.sleep(0.3)  # let the last arrivals reach the single-flight wait
        assert chat_requests(fake_upstream) == 1  # the other 49 are waiting, not calling
        fake_upstream.app.release()
        responses = [f.result() for f in futures]
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    statuses = sorted(r.headers["cf-aig-cache-status"] for r in responses)
    assert statuses == ["HIT"] * 49 + ["MISS"]
    assert chat_requests(fake_upstream) == 1


def test_single_flight_waiters_fall_back_when_the_leader_fails(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway(cache={"ttl": 300})
    fake_upstream.app.steer(times=1, status=500, delay_s=0.5)  # the leader's call fails, slowly

    def call(_: int) -> httpx.Response:
        return httpx.post(f"{server.url}/openai/chat/completions", json=CHAT, timeout=30)

    with ThreadPoolExecutor(5) as pool:
        first = pool.submit(call, 0)
        fake_upstream.app.wait_for_requests(1)
        rest = [pool.submit(call, i) for i in range(1, 5)]
        responses = [first.result(), *(f.result() for f in rest)]
    assert responses[0].status_code == 500
    assert all(r.status_code == 200 for r in responses[1:])  # not the leader's error: their own call
    assert chat_requests(fake_upstream) >= 2


# -- Redis ------------------------------------------------------------------------------------


def test_redis_entries_are_shared_between_gateways(make_gateway, fake_upstream: RunningFake, redis_url: str) -> None:
    _, one = make_gateway(cache={"ttl": 300, "storage": redis_url})
    _, two = make_gateway(cache={"ttl": 300, "storage": redis_url})
    first = httpx.post(f"{one.url}/openai/chat/completions", json={**CHAT, "stream": True})
    second = httpx.post(f"{two.url}/openai/chat/completions", json={**CHAT, "stream": True})
    assert second.headers["cf-aig-cache-status"] == "HIT" and second.content == first.content
    assert second.headers["content-type"] == first.headers["content-type"]
    assert chat_requests(fake_upstream) == 1


def test_redis_killed_mid_test_requests_still_succeed_as_miss(
    make_gateway, fake_upstream: RunningFake, redis_url: str, redis_server: RedisServer
) -> None:
    _, server = make_gateway(cache={"ttl": 300, "storage": redis_url, "timeout_ms": 200})
    client = openai.OpenAI(base_url=f"{server.url}/openai", api_key="sk-a", max_retries=0, timeout=10)

    def call() -> str:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
        return raw.headers["cf-aig-cache-status"]

    assert [call(), call()] == ["MISS", "HIT"]
    redis_server.stop()
    assert [call() for _ in range(3)] == ["MISS"] * 3
    assert chat_requests(fake_upstream) == 4
    redis_server.start()  # back (empty): the cache recovers on its own after the breaker closes
    deadline = time.monotonic() + 10
    statuses: list[str] = []
    while time.monotonic() < deadline and statuses[-2:] != ["MISS", "HIT"]:
        statuses.append(call())
        time.sleep(0.2)
    assert statuses[-2:] == ["MISS", "HIT"]


def test_redis_cluster_storage_hits_and_purges(make_gateway, fake_upstream: RunningFake, redis_cluster) -> None:
    url = f"redis+cluster://127.0.0.1:{redis_cluster.port}"
    gateway, server = make_gateway(cache={"ttl": 300, "storage": url, "key_prefix": "cluster-test"})
    with openai.OpenAI(base_url=f"{server.url}/openai", api_key="sk-a", max_retries=0) as client:
        assert client.chat.completions.with_raw_response.create(**CHAT).headers["cf-aig-cache-status"] == "MISS"
        assert client.chat.completions.with_raw_response.create(**CHAT).headers["cf-aig-cache-status"] == "HIT"
        assert chat_requests(fake_upstream) == 1
        purged = httpx.delete(f"{server.url}/admin/cache", params={"provider": "openai"})
        assert purged.status_code == 200 and purged.json()["result"]["purged"] >= 1, purged.text
        assert client.chat.completions.with_raw_response.create(**CHAT).headers["cf-aig-cache-status"] == "MISS"
    assert chat_requests(fake_upstream) == 2


def test_every_answer_below_the_cache_says_miss(make_gateway, fake_upstream: RunningFake) -> None:
    """Inside the Gateway the cache adds no ``send`` wrapper for the header: each layer below it
    (the router's answers, its errors, a rate-limit refusal, a spent budget) carries it itself."""
    auth = {"authorization": "Bearer sk-a"}

    def chat(server: Any, provider: str = "openai", **extra: Any) -> httpx.Response:
        url = f"{server.url}/{provider}/v1/chat/completions"
        return httpx.post(url, json={**CHAT, **extra}, headers=auth, timeout=10)

    _, plain = make_gateway()
    _, limited = make_gateway(rate_limit={"limit": 1, "period": 60})
    _, poor = make_gateway(budgets=[{"usd": 0.000001}], prices={"gpt-4o-mini": {"input": 1000.0, "output": 1000.0}})
    answers = [
        chat(plain),
        chat(plain, stream=True),
        chat(plain, provider="nosuchprovider"),
        chat(limited),
        chat(limited),
        chat(poor),
    ]
    assert [r.status_code for r in answers] == [200, 200, 400, 200, 429, 429]
    assert answers[1].headers["content-type"].startswith("text/event-stream")
    assert "Budget" in answers[5].text or "budget" in answers[5].text
    assert [r.headers.get("cf-aig-cache-status") for r in answers] == ["MISS"] * 6
