"""Shared fixtures: a fake LLM upstream over real HTTP, a real Redis, and a server factory.

Why: tests should talk to the gateway and its upstreams over real sockets, but starting servers is
slow, so the fake upstream and Redis live for the whole session and are reset/flushed per test.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fakes.upstream import FakeUpstream, RunningFake
from tests.servers import (
    PostgresServer,
    RedisCluster,
    RedisClusterServer,
    RedisServer,
    ServerThread,
    free_port,
    postgres_bin,
    wait_for_port,
)


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


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServer]:
    """A one-node Redis Cluster owning every slot, so cluster rules (CROSSSLOT, MOVED) apply."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed: apt-get install redis-server")
    with RedisClusterServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster3() -> Iterator[RedisCluster]:
    """A real three-master Redis Cluster (``redis-cli --cluster create``): keys spread over nodes."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server not installed: apt-get install redis-server")
    with RedisCluster(masters=3) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A session-wide throwaway PostgreSQL (initdb + pg_ctl on a free port); skipped only if the
    server binaries are missing (apt-get install postgresql; .ci/run installs them)."""
    if postgres_bin("initdb") is None or postgres_bin("pg_ctl") is None:
        pytest.skip("PostgreSQL not installed (apt-get install postgresql)")
    with PostgresServer() as server:
        yield server


_databases = iter(range(1, 1_000_000))


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """URL of a new, empty database (the server is restarted first if a test stopped it)."""
    if not postgres_server.running:
        postgres_server.start()
    return postgres_server.create_database(f"t{next(_databases)}")


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


def fake_providers(fake_url: str) -> dict[str, dict[str, Any]]:
    """Provider overrides that point the built-ins at the fake upstream (same wire formats)."""
    return {
        "openai": {"base_url": f"{fake_url}/v1"},
        "anthropic": {"base_url": f"{fake_url}/v1"},
        "google-ai-studio": {"base_url": f"{fake_url}/v1beta"},
        "workers-ai": {"base_url": f"{fake_url}/client/v4/accounts/acc/ai/run"},
        "ollama": {"base_url": fake_url},
        "groq": {"base_url": f"{fake_url}/openai/v1"},
        "azure-openai": {"base_url": f"{fake_url}/openai"},
        # Paths the fake tells apart from OpenAI's (tests/fakes/extra.py)
        "mistral": {"base_url": f"{fake_url}/mistral/v1"},
        "cohere": {"base_url": f"{fake_url}/cohere/v1"},
        "huggingface": {"base_url": f"{fake_url}/hf-inference/models"},
        "replicate": {"base_url": f"{fake_url}/replicate/v1"},
    }


def gateway_config(fake_url: str, **sections: Any) -> Any:
    """A validated gateway `Config` against the fake upstream; ``sections`` override/extend it.

    ``providers`` given here are merged over the fake ones; logs default to ``memory://`` so
    tests leave no files behind.
    """
    from aigw_asgi.config import config_from_dict

    data: dict[str, Any] = {"logs": {"store": "memory://"}}
    providers = fake_providers(fake_url)
    for name, override in sections.pop("providers", {}).items():
        providers[name] = {**providers.get(name, {}), **override}
    data["providers"] = providers
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return config_from_dict(data)


@pytest.fixture
def aigw_serve(tmp_path: Any) -> Iterator[Callable[[str], int]]:
    """``aigw_serve(toml_text) -> port``: a real ``aigw serve`` process, stopped at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(config: str) -> int:
        path = tmp_path / f"aigw-{len(procs)}.toml"
        path.write_text(config)
        port = free_port()
        log_path = tmp_path / f"aigw-{len(procs)}.log"
        with log_path.open("wb") as log:
            cmd = [sys.executable, "-m", "aigw_asgi", "serve", "--config", str(path), "--port", str(port)]
            procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT))
        try:
            wait_for_port(port, timeout=20)
        except TimeoutError:
            raise AssertionError(log_path.read_text()) from None
        return port

    yield start
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def make_gateway(
    fake_upstream: RunningFake, serve: Callable[..., ServerThread]
) -> Callable[..., tuple[Any, ServerThread]]:
    """``make_gateway(**sections) -> (gateway, server)``: a Gateway on the fake, under real uvicorn."""

    def _make(**sections: Any) -> tuple[Any, ServerThread]:
        from aigw_asgi import Gateway

        gateway = Gateway(gateway_config(fake_upstream.url, **sections))
        return gateway, serve(gateway)

    return _make


@pytest.fixture(autouse=True)
def _close_sdk_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Close every official-SDK client a test created, when the test ends.

    Tests build ``openai.OpenAI(...)``/``anthropic.Anthropic(...)`` the way users do, and an unclosed
    client's socket is otherwise finalised by the garbage collector at some later moment, where its
    ResourceWarning (an error here) would fail whichever test happens to be running.
    """
    import anthropic
    import openai

    created: list[Any] = []
    # Sync clients only: an async client must be closed inside its own loop, by its test.
    for cls in (openai.OpenAI, anthropic.Anthropic):
        original = cls.__init__

        def init(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> None:
            _original(self, *args, **kwargs)
            created.append(self)

        monkeypatch.setattr(cls, "__init__", init)
    yield
    for client in created:
        client.close()


_WINDOW_SENSITIVE = (
    "tests/ratelimit/",
    "tests/websocket/",
    "tests/telemetry/test_logs_e2e.py",
    "tests/robustness/",
    "tests/compat/test_middleware.py",
)


@pytest.fixture(autouse=True)
def _clear_of_window_edges(request: pytest.FixtureRequest) -> None:
    """Start rate-limit tests at least 3 s before a wall-clock minute edge.

    Fixed windows are clock-aligned (Cloudflare's rule), and every period these tests use (60, 600,
    3600 s) ends on a minute edge: a test asserting "200, then 429" must not straddle one.
    """
    if not request.node.nodeid.startswith(_WINDOW_SENSITIVE):
        return
    left = 60 - time.time() % 60
    if left < 3:
        time.sleep(left + 0.05)
