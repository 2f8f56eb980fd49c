"""The admin API over real HTTP: log filters and paging, PATCH, DELETE, analytics, health, cache purge.

Tests reach the admin API from loopback, which the admin guard lets through without a token.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fakes.upstream import RunningFake

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
def gw(make_gateway) -> httpx.Client:
    _, server = make_gateway(prices={"claude-fake-1": {"input": 1e-6, "output": 2e-6}})
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def chat(client: httpx.Client, model: str = "gpt-4o-mini", **headers: str) -> str:
    if model.startswith("claude"):
        resp = client.post(
            "/anthropic/v1/messages",
            json={"model": model, "max_tokens": 10, "messages": MESSAGES},
            headers={"x-api-key": "sk-ant-test", **headers},
        )
    else:
        resp = client.post("/openai/chat/completions", json={"model": model, "messages": MESSAGES}, headers=headers)
    return resp.headers["cf-aig-log-id"]


def listing(client: httpx.Client, **params: Any) -> dict[str, Any]:
    resp = client.get("/admin/logs", params=params)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["success"] is True and body["errors"] == []
    return body


def test_list_filters_and_paging(gw: httpx.Client, fake_upstream: RunningFake) -> None:
    a = chat(gw, **{"cf-aig-metadata": '{"user":"alice","vip":true}'})
    b = chat(gw, "claude-fake-1", **{"cf-aig-metadata": '{"user":"bob"}'})
    fake_upstream.app.fail(500, times=1)
    c = chat(gw, **{"cf-aig-event-id": "ev-err"})

    def ids(**params: Any) -> set[str]:
        return {r["id"] for r in listing(gw, per_page=100, **params)["result"]}

    assert ids() == {a, b, c}
    assert ids(provider="anthropic") == {b}
    assert ids(model="gpt-4o-mini") == {a, c}
    assert ids(success="false") == {c}
    assert ids(event_id="ev-err") == {c}
    assert ids(**{"metadata.user": "alice"}) == ids(**{"metadata.vip": "true"}) == {a}
    assert ids(min_cost=1e-5) == {b}  # 10 in + 5 out at the configured claude-fake-1 price = 2e-5
    assert ids(max_tokens=14) == set() and ids(min_tokens=15) == {a, b}
    assert ids(start="2000-01-01", end="2000-01-02") == set()

    first = listing(gw, per_page=2, order_by="created_at", direction="asc")
    assert [r["id"] for r in first["result"]] == [a, b]
    assert first["result_info"] == {"page": 1, "per_page": 2, "count": 2, "total_count": 3}
    second = listing(gw, per_page=2, page=2, direction="asc")
    assert [r["id"] for r in second["result"]] == [c]


def test_bad_parameters_are_400_naming_them(gw: httpx.Client) -> None:
    bad = (
        {"order_by": "nope"},
        {"per_page": "0"},
        {"bogus": "1"},
        {"start": "yesterday"},
        {"start": "nan"},
        {"end": "inf"},
    )
    for params in bad:
        resp = gw.get("/admin/logs", params=params)
        assert resp.status_code == 400
        error = resp.json()["error"][0]
        assert error["code"] == 2004 and next(iter(params)) in error["message"]


def test_get_one_and_bodies(gw: httpx.Client) -> None:
    log_id = chat(gw)
    row = gw.get(f"/admin/logs/{log_id}").json()["result"]
    assert row["id"] == log_id and "request_body" not in row
    assert gw.get(f"/admin/logs/{log_id}/request").json()["result"]["model"] == "gpt-4o-mini"
    assert gw.get(f"/admin/logs/{log_id}/response").json()["result"]["object"] == "chat.completion"
    missing = gw.get("/admin/logs/01900000-0000-7000-8000-000000000000")
    assert missing.status_code == 404 and missing.json()["success"] is False


def test_patch_feedback_score_metadata(gw: httpx.Client) -> None:
    log_id = chat(gw)
    resp = gw.patch(f"/admin/logs/{log_id}", json={"feedback": 1, "score": 90, "metadata": {"reviewed": True}})
    assert resp.status_code == 200, resp.text
    row = resp.json()["result"]
    assert (row["feedback"], row["score"], row["metadata"]) == (1, 90, {"reviewed": True})
    assert gw.get(f"/admin/logs/{log_id}").json()["result"]["feedback"] == 1
    assert {r["id"] for r in listing(gw, feedback=1)["result"]} == {log_id}
    assert gw.patch(f"/admin/logs/{log_id}", json={"feedback": None}).json()["result"]["feedback"] is None

    for bad in (
        {"feedback": 2},
        {"feedback": True},
        {"score": 101},
        {"metadata": {"nested": {"x": 1}}},
        {"metadata": {str(i): i for i in range(6)}},
        {"cost": 0},
        [],
    ):
        resp = gw.patch(f"/admin/logs/{log_id}", json=bad)
        assert resp.status_code == 400, bad
        assert resp.json()["error"][0]["code"] == 2004
    assert gw.patch("/admin/logs/nope", json={"feedback": 1}).status_code == 404


def test_delete_by_filter_and_by_id(gw: httpx.Client) -> None:
    a = chat(gw)
    b = chat(gw, "claude-fake-1")
    c = chat(gw)
    refused = gw.delete("/admin/logs")
    assert refused.status_code == 400 and "all=true" in refused.json()["error"][0]["message"]
    assert gw.delete("/admin/logs", params={"provider": "anthropic"}).json()["result"] == {"deleted": 1}
    assert gw.get(f"/admin/logs/{b}").status_code == 404
    assert gw.delete(f"/admin/logs/{a}").json()["result"] == {"deleted": 1}
    assert {r["id"] for r in listing(gw)["result"]} == {c}
    assert gw.delete("/admin/logs", params={"all": "true"}).json()["result"] == {"deleted": 1}
    assert listing(gw)["result_info"]["total_count"] == 0


def test_analytics(gw: httpx.Client, fake_upstream: RunningFake) -> None:
    chat(gw, **{"cf-aig-metadata": '{"team":"a"}'})
    chat(gw, **{"cf-aig-metadata": '{"team":"a"}', "cf-aig-cache-ttl": "60"})
    chat(gw, **{"cf-aig-metadata": '{"team":"a"}', "cf-aig-cache-ttl": "60"})  # a cache hit
    chat(gw, "claude-fake-1", **{"cf-aig-metadata": '{"team":"b"}'})
    fake_upstream.app.fail(500, times=1)
    chat(gw)
    resp = gw.get("/admin/analytics")
    assert resp.status_code == 200, resp.text
    totals = resp.json()["result"]["totals"]
    assert totals["requests"] == 5 and totals["errors"] == 1 and totals["cached"] == 1
    assert totals["cache_hit_rate"] == 0.2
    fresh = gw.get("/admin/analytics", params={"cached": "false"}).json()["result"]["totals"]
    assert fresh["tokens_in"] == 30 and fresh["tokens_out"] == 15  # the failed attempt reported none
    mini = 10 * 0.15e-6 + 5 * 0.6e-6
    assert totals["cost"] == pytest.approx(2 * mini + 2e-5)  # the hit costs nothing
    assert totals["duration_ms_p50"] is not None and totals["duration_ms_p95"] >= totals["duration_ms_p50"]

    groups = gw.get("/admin/analytics", params={"group_by": "provider"}).json()["result"]["groups"]
    assert [(g["provider"], g["requests"]) for g in groups] == [("openai", 4), ("anthropic", 1)]
    groups = gw.get("/admin/analytics", params={"group_by": "metadata.team", "success": "true"}).json()["result"]
    assert {g["metadata.team"]: g["requests"] for g in groups["groups"]} == {"a": 3, "b": 1}
    timeline = gw.get("/admin/analytics", params={"group_by": "time,model", "interval": "minute"}).json()["result"]
    assert timeline["interval"] == 60 and sum(g["requests"] for g in timeline["groups"]) == 5
    assert all(g["time"].endswith(":00.000Z") for g in timeline["groups"])
    assert gw.get("/admin/analytics", params={"group_by": "colour"}).status_code == 400


def test_health_prices_cache_purge_and_methods(gw: httpx.Client) -> None:
    chat(gw)
    health = gw.get("/admin/health").json()["result"]
    assert health["status"] == "ok" and health["gateway"] == "default"
    assert health["logs"]["store"] == "memory" and health["logs"]["rows"] == 1 and health["logs"]["dropped"] == 0
    prices = gw.get("/admin/prices").json()["result"]
    assert prices["as_of"] and prices["providers"]["openai"]["gpt-4o-mini"]["input"] == 0.15
    assert prices["overrides"]["claude-fake-1"]["output"] == 2.0

    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    gw.post("/openai/chat/completions", json=body, headers={"cf-aig-cache-ttl": "60"})
    hit = gw.post("/openai/chat/completions", json=body, headers={"cf-aig-cache-ttl": "60"})
    assert hit.headers["cf-aig-cache-status"] == "HIT"
    purged = gw.delete("/admin/cache", params={"provider": "openai"})
    assert purged.status_code == 200 and purged.json()["result"]["purged"] >= 1
    after = gw.post("/openai/chat/completions", json=body, headers={"cf-aig-cache-ttl": "60"})
    assert after.headers["cf-aig-cache-status"] == "MISS"
    # One entry, by the key its log row shows.
    assert (
        gw.post("/openai/chat/completions", json=body, headers={"cf-aig-cache-ttl": "60"}).headers[
            "cf-aig-cache-status"
        ]
        == "HIT"
    )
    key = gw.get(f"/admin/logs/{after.headers['cf-aig-log-id']}").json()["result"]["cache_key"]
    assert key and key.startswith("openai:")
    assert gw.delete("/admin/cache", params={"key": key}).json()["result"] == {"purged": 1}
    again = gw.post("/openai/chat/completions", json=body, headers={"cf-aig-cache-ttl": "60"})
    assert again.headers["cf-aig-cache-status"] == "MISS"

    assert gw.post("/admin/logs").status_code == 405
    assert gw.get("/admin/nothing-here").status_code == 404


def test_routing_edges_answer_in_the_envelope(gw: httpx.Client) -> None:
    chat(gw)
    assert listing(gw)["result_info"]["total_count"] == 1
    assert gw.get("/admin/logs/").json()["result_info"]["total_count"] == 1  # a trailing slash is the same path
    refused = gw.put("/admin/logs")
    assert refused.status_code == 405 and refused.headers["allow"] == "DELETE, GET"
    assert refused.json()["error"][0] == {"code": 2004, "message": "Method not allowed; use DELETE, GET"}
    missing = gw.get("/admin/logs/x/y/z")
    assert missing.status_code == 404 and missing.json()["error"][0]["code"] == 2004
    too_big = gw.patch(f"/admin/logs/{chat(gw)}", content=b"{" + b" " * 70_000 + b"}")
    assert too_big.status_code == 413 and too_big.json()["error"][0]["code"] == 2007
