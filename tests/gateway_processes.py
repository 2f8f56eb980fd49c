"""Real ``aigw serve`` processes for tests: ``start(config_toml) -> port``, all stopped at the end.

Why processes and not threads: what keys and budgets promise across instances (a revocation holds
everywhere, a budget is never overspent by a burst on several instances) is only proven by
separate interpreters that share nothing but the store.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.servers import free_port, wait_for_port


class GatewayProcesses:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, config: str) -> int:
        n = len(self.procs)
        path = self.directory / f"aigw-{n}.toml"
        path.write_text(config)
        port = free_port()
        log_path = self.directory / f"aigw-{n}.log"
        with log_path.open("wb") as log:
            cmd = [sys.executable, "-m", "aigw_asgi", "serve", "--config", str(path), "--port", str(port)]
            self.procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT))
        try:
            wait_for_port(port, timeout=20)
        except TimeoutError:
            raise AssertionError(log_path.read_text()) from None
        return port

    def log(self, n: int) -> str:
        return (self.directory / f"aigw-{n}.log").read_text()

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
