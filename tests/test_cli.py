"""`aigw` as a user runs it: real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import openai

from aigw_asgi import __version__
from aigw_asgi.cli import main
from tests.examples.test_examples import ROOT, stop, write_config
from tests.fakes.upstream import RunningFake
from tests.servers import free_port, wait_for_port


def aigw(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aigw_asgi", *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_version() -> None:
    result = aigw("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"aigw-asgi {__version__}"


def test_check_config(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[cache]\nttl = 60\n[providers.custom-x]\nbase_url = "http://127.0.0.1:1/v1"\n')
    assert main(["check-config", str(good)]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("[cache]\nttl = 1\n")
    result = aigw("check-config", str(bad))
    assert result.returncode == 2 and "cache.ttl: expected 0 or 60 to 2592000 seconds" in result.stderr
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[providers.opena]\n")
    result = aigw("check-config", str(unknown))
    assert result.returncode == 2 and "providers.opena: unknown provider" in result.stderr


def test_serve_refuses_a_bad_config_before_starting(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[rate_limit]\ntechnique = 'leaky'\n")
    result = aigw("serve", "--config", str(bad), "--port", str(free_port()))
    assert result.returncode == 2 and "rate_limit.technique" in result.stderr


def test_serve_runs_the_gateway(tmp_path: Path, fake_upstream: RunningFake) -> None:
    config = write_config(tmp_path / "aigw.toml", fake_upstream.url)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aigw_asgi", "serve", "--config", str(config), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output = ""
    try:
        wait_for_port(port, timeout=30)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/openai", api_key="sk-x", max_retries=0)
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
        assert reply.choices[0].message.content == "chunk0 chunk1 chunk2 chunk3 chunk4 "
        assert httpx.get(f"http://127.0.0.1:{port}/admin/health").json()["result"]["status"] == "ok"
    finally:
        output = stop(proc)
    assert f"gateway on http://127.0.0.1:{port}/" in output


def test_workers_collect_the_young_generation_less_often() -> None:
    """``server.gc_threshold`` (default 50,000) is what each ``aigw serve`` worker sets; 0 leaves
    the interpreter's own setting alone (a host that mounts the gateway keeps its own)."""
    import gc

    from aigw_asgi.cli import tune_gc
    from aigw_asgi.config import ServerConfig

    before = gc.get_threshold()
    try:
        tune_gc(0)
        assert gc.get_threshold() == before
        tune_gc(ServerConfig().gc_threshold)
        assert gc.get_threshold() == (50_000, 20, 20)
    finally:
        gc.set_threshold(*before)


def test_serve_redacts_secrets_from_every_log_line(caplog) -> None:
    import logging

    from aigw_asgi.cli import _redact_log_output
    from aigw_asgi.config import config_from_dict
    from aigw_asgi.redact import RedactingFilter

    secret = "sk-provider-secret-0123456789"
    config = config_from_dict({"providers": {"openai": {"api_key": secret}}})
    root = logging.getLogger()
    try:
        _redact_log_output(config)
        _redact_log_output(config)  # idempotent: one filter per handler
        filters = [f for h in root.handlers for f in h.filters if isinstance(f, RedactingFilter)]
        assert len(filters) == len(root.handlers)
        with caplog.at_level(logging.WARNING):
            logging.getLogger("aiohttp.client").warning("upstream said: bad key %s", secret)
        assert caplog.text and secret not in caplog.text and "[REDACTED]" in caplog.text
    finally:
        for handler in root.handlers:
            for f in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
                handler.removeFilter(f)


def test_workers_refuse_a_limit_each_would_count_alone(tmp_path: Path) -> None:
    """SPEC §16: limits on memory storage with N > 1 workers fail at start, naming the keys and the fix."""
    config = tmp_path / "split.toml"
    config.write_text(
        '[logs]\nstore = "memory://"\n[rate_limit]\nlimit = 5\n'
        '[[rate_limit.rules]]\nname = "per-ip"\nlimit = 2\nperiod = 60\nscope = ["ip"]\n'
    )
    result = aigw("serve", "--config", str(config), "--workers", "2", "--port", str(free_port()))
    assert result.returncode == 2, result.stderr
    assert "rate_limit.limit, rate_limit.rules[0] (per-ip)" in result.stderr
    assert "redis://" in result.stderr and "gateway on" not in result.stderr
    one = aigw("check-config", str(config))
    assert one.returncode == 0  # one worker (the default): nothing is split
    config.write_text(config.read_text() + "[server]\nworkers = 3\n")
    three = aigw("check-config", str(config))
    assert three.returncode == 2 and "3 workers with rate_limit.storage = memory://" in three.stderr


def test_workers_warn_about_a_per_worker_memory_cache(tmp_path: Path, redis_url: str) -> None:
    """A memory cache with N > 1 workers starts (each worker fills its own) but says so once."""
    config = tmp_path / "cache.toml"
    config.write_text(
        f'[logs]\nstore = "sqlite:///{tmp_path}/aigw.db"\n[cache]\nttl = 60\n'
        f'[rate_limit]\nlimit = 5\nstorage = "{redis_url}"\n'
    )
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aigw_asgi", "serve", "--config", str(config), "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout=30)
        assert httpx.get(f"http://127.0.0.1:{port}/admin/health").status_code == 200
    finally:
        output = stop(proc)
    assert output.count("each worker keeps its own cache") == 1, output
    assert "logs.store" not in output and "rate_limit" not in output


def test_check_config_refuses_a_log_database_it_cannot_write(tmp_path: Path, capsys) -> None:
    """Issue 11 defect 10: an unwritable SQLite path passed check-config, then lost every row."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cases = {
        tmp_path / "missing" / "aigw.db": "does not exist",
        tmp_path: "is a directory",
        blocker / "aigw.db": "does not exist",  # its "directory" is a file
    }
    for path, why in cases.items():
        config = tmp_path / "logs.toml"
        config.write_text(f'[logs]\nstore = "sqlite:///{path}"\n')
        assert main(["check-config", str(config)]) == 2
        err = capsys.readouterr().err
        assert "logs.store:" in err and why in err, err
    fine = tmp_path / "fine.toml"
    fine.write_text(f'[logs]\nstore = "sqlite:///{tmp_path}/aigw.db"\n')
    assert main(["check-config", str(fine)]) == 0
    off = tmp_path / "off.toml"  # logs off: the path is never opened, so it is not checked
    off.write_text(f'[logs]\nenabled = false\nstore = "sqlite:///{tmp_path}/missing/aigw.db"\n')
    assert main(["check-config", str(off)]) == 0
    result = aigw("serve", "--config", str(config), "--port", str(free_port()))
    assert result.returncode == 2 and "logs.store:" in result.stderr


def test_serve_answers_a_websocket_message_over_16_mib_with_an_error_frame(
    aigw_serve, fake_upstream: RunningFake
) -> None:
    """Issue 11: uvicorn's own 16 MiB cap closed the socket (1009) before the gateway could say 2007."""
    import json

    from websockets.sync.client import connect

    port = aigw_serve(f'[logs]\nstore = "memory://"\n[providers.openai]\nbase_url = "{fake_upstream.url}/v1"\n')
    chat = {"provider": "openai", "endpoint": "chat/completions", "query": {"model": "gpt-4o-mini", "messages": []}}
    big = json.dumps({"type": "universal.create", "eventId": "big", "request": chat, "pad": "x" * (17 << 20)})
    with connect(f"ws://127.0.0.1:{port}/", open_timeout=10, close_timeout=2, max_size=None) as ws:
        ws.send(big)
        frame = json.loads(ws.recv(timeout=30))
        assert frame["type"] == "universal.error" and frame["error"]["code"] == 2007
        # The socket stays open and usable.
        ws.send(json.dumps({"type": "universal.create", "eventId": "small", "request": chat}))
        assert json.loads(ws.recv(timeout=10))["type"] == "universal.created"
