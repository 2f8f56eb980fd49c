"""The admin API with generated query strings, paths and bodies (SPEC §9).

Never a 500: a parameter the API does not understand is a 400 (code 2004) naming it, and a
valid query answers ``{"success":true,...}``. Run against the memory and the SQLite log store,
after a few real requests so the stores hold rows to filter, sort and group.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import example, given, settings, strategies as st

from tests.robustness.harness import ADMIN_TOKEN, TOKEN, Harness, assert_well_formed, robust, robust_config
from tests.robustness.strategies import json_values, latin1_text

ADMIN = [(b"authorization", f"Bearer {ADMIN_TOKEN}".encode())]
NAMES = ("id", "provider", "model", "event_id", "request_id", "token_name", "path", "cache_status", "success",
         "cached", "status_code", "feedback", "start", "end", "start_date", "end_date", "min_cost", "max_cost",
         "min_duration", "max_duration", "min_tokens", "max_tokens", "min_tokens_in", "max_tokens_out", "order_by",
         "direction", "order_by_direction", "page", "per_page", "limit", "all", "group_by", "interval",
         "metadata.user", "metadata.", "metadata.a.b", "min_", "unknown", "")  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(["true", "false", "1", "0", "nan", "inf", "-inf", "1e400", "-1", "0.5", "100", "101",
                     "1000000000000000000000", "2025-01-31", "2025-01-31T12:00:00Z", "0001-01-01T00:00:00+23:59",
                     "9999-12-31T23:59:59-23:59", "openai", "time", "time,provider,model", "metadata.user",
                     "metadata.", "cost", "created_at", "asc", "desc", "minute", "day", "", " "]),
    st.integers(-(10**20), 10**20).map(str),
    st.floats().map(str),
    latin1_text,
)  # fmt: skip


@st.composite
def query_strings(draw: st.DrawFn) -> bytes:
    pairs = draw(st.lists(st.tuples(st.sampled_from(NAMES) | st.text(max_size=8), VALUES), max_size=5))
    raw = "&".join(f"{quote(k, safe='.')}={quote(v, safe='')}" for k, v in pairs)
    if draw(st.booleans()) and draw(st.booleans()):
        raw += draw(st.sampled_from(["&", "&&", "=", "%", "%zz", "a=%ff", "a"]))
    return raw.encode("ascii")


@pytest.fixture(params=["memory", "sqlite"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    store = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'logs.db'}"
    h = Harness(robust_config(logs={"store": store, "flush_interval_ms": 50}))
    auth = [(b"cf-aig-authorization", f"Bearer {TOKEN}".encode())]
    meta = [(b"cf-aig-metadata", b'{"user":"u1","n":2}')]
    for behaviour in ("json", "sse", "error_429", "unreachable", "json"):
        body = json.dumps({"model": "gpt-fake-1", "messages": [], "stream": behaviour == "sse"}).encode()
        h.request("POST", b"/openai/chat/completions", headers=auth + meta, body=body, behaviour=behaviour)
    yield h
    assert h.close() == [], "tasks left running after aclose()"


def _check_admin(answer_status: int, err: tuple[int, str] | None, body: bytes) -> None:
    if err is not None:
        assert err[0] in (2004, 2009) or answer_status == 404, (answer_status, err)
    elif answer_status < 300 and not body.startswith(b"<!doctype html>"):  # the dashboard's page is HTML
        assert json.loads(body)["success"] is True


@settings(robust(max_examples=150))
@given(endpoint=st.sampled_from([b"/admin/logs", b"/admin/analytics"]), query=query_strings())
def test_random_query_parameters_never_500(harness: Harness, endpoint: bytes, query: bytes) -> None:
    answer = harness.request("GET", endpoint, query=query, headers=ADMIN)
    assert_well_formed(answer, admin=True)
    err = answer.envelope_error()
    _check_admin(answer.status, err, answer.body)
    assert answer.status in (200, 400), (answer.status, answer.body[:300])
    if answer.status == 400:
        assert err is not None and err[0] == 2004, answer.body[:300]


@settings(robust(max_examples=100))
@given(
    method=st.sampled_from(["GET", "PATCH", "DELETE", "POST", "PUT"]),
    path=st.sampled_from(
        [
            "/admin",
            "/admin/",
            "/admin/logs",
            "/admin/logs/x",
            "/admin/logs/%s",
            "/admin/cache",
            "/admin/logs/%s/request",
            "/admin/logs/%s/response",
            "/admin/health",
            "/admin/prices",
            "/admin/analytics",
            "/admin/nope",
            "/admin/logs/%2e%2e",
        ]
    ),  # fmt: skip
    query=query_strings(),
    body=st.binary(max_size=50)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.fixed_dictionaries(
        {},
        optional={
            "feedback": json_values | st.integers(-2, 2),
            "score": json_values | st.floats(),
            "metadata": json_values,
        },
    ).map(lambda v: json.dumps(v).encode()),  # fmt: skip
    auth=st.sampled_from(["admin", "admin", "admin", "gateway", "none"]),
)
@example(method="GET", path="/admin/", query=b"", body=b"", auth="none")
@example(method="GET", path="/admin/", query=b"", body=b"", auth="admin")
@example(method="GET", path="/admin", query=b"x=1", body=b"", auth="gateway")
@example(method="PUT", path="/admin/", query=b"", body=b"", auth="none")
def test_random_admin_requests_never_500(
    harness: Harness, method: str, path: str, query: bytes, body: bytes, auth: str
) -> None:
    if "%s" in path:  # a real log id half the time
        path = path % ("0" if len(body) % 2 else _some_log_id(harness))
    headers = {"admin": ADMIN, "gateway": [(b"authorization", f"Bearer {TOKEN}".encode())], "none": []}[auth]
    answer = harness.request(method, path.encode(), query=query, headers=headers, body=body)
    assert_well_formed(answer, admin=True)
    _check_admin(answer.status, answer.envelope_error(), answer.body)
    # The dashboard's page (GET /admin/, and /admin redirecting there) holds no data, so it is public
    # when an admin token guards the API; everything else needs the token.
    page = method == "GET" and path in ("/admin", "/admin/")
    if auth != "admin" and not page:
        assert answer.status == 401
    if page:
        assert answer.status in (200, 307), answer.status


def _some_log_id(harness: Harness) -> str:
    answer = harness.request("GET", b"/admin/logs", query=b"per_page=1", headers=ADMIN)
    rows = answer.json()["result"]
    return rows[0]["id"] if rows else "none"
