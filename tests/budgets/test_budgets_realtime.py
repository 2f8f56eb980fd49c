"""A realtime session (``WS /openai/v1/realtime``) is admitted at the upgrade and settled when it closes."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.realtime.conftest import open_ws, recv_json, until

PRICES = {"gpt-realtime": {"input": 4e-6, "output": 16e-6, "cached_input": 0.4e-6}}
PER_RESPONSE = 10 * 4e-6 + 2 * 0.4e-6 + 34 * 16e-6  # the fake's usage event: 12 in (2 cached), 34 out
REALTIME = {"idle_timeout_s": 3600, "max_session_s": 0, "ping_interval_s": 0}


def spent(server: Any) -> float:
    deadline = time.monotonic() + 10
    while True:
        (entry,) = httpx.get(f"{server.url}/admin/budgets", timeout=10).json()["result"]
        if entry["reserved"] == 0 or time.monotonic() > deadline:
            return float(entry["spent"])
        time.sleep(0.02)


def test_a_realtime_session_is_charged_its_usage(make_gateway, fake_upstream) -> None:
    worst = 4096 * 16e-6  # no body, no max tokens: the configured output cap at the output price
    budget = {"usd": worst + 1.5 * PER_RESPONSE, "period": "total"}
    _, server = make_gateway(prices=PRICES, budgets=[budget], realtime=REALTIME)
    with open_ws(server) as ws:
        recv_json(ws)
        for _ in range(2):
            ws.send(json.dumps({"type": "response.create"}))
            until(ws, "response.done")
    assert math.isclose(spent(server), 2 * PER_RESPONSE, rel_tol=1e-6)
    # What is left no longer fits a session's worst case: the next upgrade is refused, in HTTP.
    with pytest.raises(InvalidStatus) as refused:
        with open_ws(server):
            pass
    assert refused.value.response.status_code == 429
    assert json.loads(refused.value.response.body)["error"][0]["code"] == 2031


def test_a_session_that_spends_its_budget_is_closed_mid_session(make_gateway, fake_upstream) -> None:
    """Usage past what the session holds is reserved as it is reported; a refusal closes the session."""
    from websockets.exceptions import ConnectionClosed

    from tests.realtime.conftest import rows

    worst = 10 * 16e-6  # spend.max_output_tokens = 10: the session holds less than one response
    budget = {"usd": worst + 1.5 * PER_RESPONSE, "period": "total"}
    _, server = make_gateway(prices=PRICES, budgets=[budget], realtime=REALTIME, spend={"max_output_tokens": 10})
    with open_ws(server) as ws:
        recv_json(ws)
        ws.send(json.dumps({"type": "response.create"}))
        until(ws, "response.done")  # 1 response: more than held, the difference fits the budget
        ws.send(json.dumps({"type": "response.create"}))
        until(ws, "response.done")  # the answer the client is charged for arrives, then the close
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert closed.value.rcvd.reason.startswith("Spend budget")
    # Charged what it used: at most one response past the budget (the documented bound).
    assert math.isclose(spent(server), 2 * PER_RESPONSE, rel_tol=1e-6)
    (row,) = rows(server)
    assert row["error_type"] == "budget_exhausted" and row["rate_limited_by"].startswith("budget:")
