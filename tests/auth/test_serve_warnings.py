"""``aigw serve`` warns when it listens beyond loopback with an open admin API or no authentication."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers import free_port


def serve_stderr(tmp_path: Path, config: str, host: str) -> str:
    """Start ``aigw serve``, collect stderr until it announces the gateway, then stop it."""
    path = tmp_path / "aigw.toml"
    path.write_text(config)
    env = {**os.environ, "AIGW_TEST_ADMIN": "admin-token-for-serve"}
    env.pop("AIGW_CONFIG", None)
    cmd = [
        sys.executable,
        "-m",
        "aigw_asgi",
        "serve",
        "--config",
        str(path),
        "--host",
        host,
        "--port",
        str(free_port()),
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if "gateway on http://" in line:
                break
    finally:
        proc.terminate()
        proc.communicate(timeout=20)  # drains and closes the pipe
    text = "".join(lines)
    assert "gateway on http://" in text, text
    return text


BASE = '[logs]\nstore = "memory://"\n'


def test_public_bind_without_admin_token_or_authentication_warns(tmp_path: Path) -> None:
    text = serve_stderr(tmp_path, BASE, "0.0.0.0")
    assert "without gateway.admin_token" in text
    assert "authentication = false" in text


def test_public_bind_with_admin_token_and_authentication_is_quiet(tmp_path: Path) -> None:
    config = BASE + (
        "[gateway]\nauthentication = true\n"
        'tokens = [{ name = "app", token = "serve-gateway-token" }]\n'
        'admin_token = "env:AIGW_TEST_ADMIN"\n'
    )
    text = serve_stderr(tmp_path, config, "0.0.0.0")
    assert "admin_token" not in text and "authentication" not in text
    assert "serve-gateway-token" not in text and "admin-token-for-serve" not in text


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_loopback_bind_is_quiet(tmp_path: Path, host: str) -> None:
    text = serve_stderr(tmp_path, BASE, host)
    assert "admin_token" not in text and "authentication = false" not in text
