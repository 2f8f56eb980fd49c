"""Every example runs, under a real server, and the official SDK works through it."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import fake_providers
from tests.fakes.upstream import RunningFake
from tests.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = [{"role": "user", "content": "hi"}]


def write_config(path: Path, fake_url: str) -> Path:
    lines = ['[logs]\nstore = "memory://"\n']
    for name, table in fake_providers(fake_url).items():
        lines.append(f'[providers.{name}]\nbase_url = "{table["base_url"]}"\n')
    path.write_text("\n".join(lines))
    return path


@pytest.fixture
def example_config(tmp_path: Path, fake_upstream: RunningFake, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = write_config(tmp_path / "aigw.toml", fake_upstream.url)
    monkeypatch.setenv("AIGW_CONFIG", str(config))
    return config


def load(name: str):  # a fresh import: examples read $AIGW_CONFIG at import time
    sys.modules.pop(f"examples.{name}", None)
    return importlib.import_module(f"examples.{name}")


def chat_through(base_url: str) -> str:
    client = openai.OpenAI(base_url=base_url, api_key="sk-x", max_retries=0)
    chunks = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize("name", ["fastapi_mount", "starlette_mount", "quart_app"])
def test_mounted_examples(name: str, example_config: Path, serve, fake_upstream: RunningFake) -> None:
    module = load(name)
    server = serve(module.app, lifespan="on")
    assert httpx.get(f"{server.url}/hello").json() == {"hello": "world"}  # the host app still works
    assert chat_through(f"{server.url}/ai/openai") == "chunk0 chunk1 chunk2 chunk3 chunk4 "
    assert fake_upstream.app.last.path == "/v1/chat/completions"
    # The gateway's own 404 for a path outside any provider, inside the mount:
    assert httpx.post(f"{server.url}/ai/nope/x", json={}).json()["error"][0]["code"] == 2008


def test_standalone_under_uvicorn(example_config: Path, serve) -> None:
    server = serve(load("standalone").app, lifespan="on")
    assert chat_through(f"{server.url}/openai") == "chunk0 chunk1 chunk2 chunk3 chunk4 "


def test_wrap_middleware_example(serve) -> None:
    server = serve(load("wrap_middleware").app)
    url = f"{server.url}/my-model/generate"
    assert httpx.post(url, json={"prompt": "hi"}).status_code == 401
    headers = {"cf-aig-authorization": "Bearer example-token-123"}
    resp = httpx.post(url, json={"prompt": "hi"}, headers=headers)
    assert resp.status_code == 200 and resp.json()["served_by"] == "my_model"


def run_server(cmd: list[str], port: int, env: dict[str, str]):
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout=30)
    except Exception:
        proc.kill()
        out = proc.communicate(timeout=5)[0].decode(errors="replace")
        raise AssertionError(f"{cmd[2]} did not start:\n{out[-2000:]}") from None
    return proc


def stop(proc: subprocess.Popen[bytes]) -> str:
    """Stop a server process and return what it printed (closing its pipe)."""
    proc.terminate()
    try:
        out = proc.communicate(timeout=10)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        out = proc.communicate()[0]
    return (out or b"").decode(errors="replace")


@pytest.mark.parametrize("server_name", ["hypercorn", "granian"])
def test_standalone_under_other_servers(server_name: str, example_config: Path) -> None:
    pytest.importorskip(server_name)
    port = free_port()
    cmd = {
        "hypercorn": [sys.executable, "-m", "hypercorn", "examples.standalone:app", "--bind", f"127.0.0.1:{port}"],
        "granian": [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "examples.standalone:app",
        ],
    }[server_name]
    env = {**os.environ, "AIGW_CONFIG": str(example_config), "PYTHONPATH": str(ROOT)}
    proc = run_server(cmd, port, env)
    try:
        deadline = time.time() + 10
        while True:  # granian may accept before its worker is ready
            try:
                text = chat_through(f"http://127.0.0.1:{port}/openai")
                break
            except openai.APIConnectionError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        assert text == "chunk0 chunk1 chunk2 chunk3 chunk4 "
    finally:
        stop(proc)
