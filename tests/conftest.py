"""Shared fixtures: a fake LLM upstream over real HTTP, a real Redis, and a server factory.

Why: tests should talk to the gateway and its upstreams over real sockets, but starting servers is
slow, so the fake upstream and Redis live for the whole session and are reset/flushed per test.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fakes.upstream import FakeUpstream, RunningFake
from tests.servers import RedisServer, ServerThread


@pytest.fixture(scope="session")
def _fake_upstream_server() -> Iterator[RunningFake]:
    app = FakeUpstream()
    with ServerThread(app) as server:
        yield RunningFake(url=server.url, app=app, server=server)
        app.reset()  # release anything still hanging so uvicorn shuts down promptly


@pytest.fixture
def fake_upstream(_fake_upstream_server: RunningFake) -> Iterator[RunningFake]:
    """The session's fake upstream, with requests and steering reset before and after the test."""
    _fake_upstream_server.app.reset()
    yield _fake_upstream_server
    _fake_upstream_server.app.reset()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A session-wide throwaway redis-server; skipped only if the binary is missing."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed (apt-get install redis-server)")
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of an empty Redis (restarted first if a previous test stopped it)."""
    if not redis_server.running:
        redis_server.start()
    redis_server.flushall()
    return redis_server.url


@pytest.fixture
def serve() -> Iterator[Callable[..., ServerThread]]:
    """Factory: ``serve(app, **ServerThread/uvicorn kwargs)`` -> started ServerThread, stopped at teardown."""
    started: list[ServerThread] = []

    def _serve(app: Any, **kwargs: Any) -> ServerThread:
        server = ServerThread(app, **kwargs).start()
        started.append(server)
        return server

    yield _serve
    for server in reversed(started):
        server.stop()
