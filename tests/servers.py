"""Real servers for tests: any ASGI app under uvicorn in a thread, and a throwaway redis-server.

Why: the gateway must be tested over real sockets (streaming, disconnects, timeouts and connection
reuse behave differently through an in-process transport), and rate-limit/cache code needs a real
Redis that a test can kill and bring back. No pytest dependency, so scripts and benchmarks can use
these too.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

__all__ = ["RedisServer", "ServerThread", "free_port", "wait_for_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (there is an inherent small race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    """Block until something accepts TCP connections on ``host:port``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing is listening on {host}:{port} after {timeout}s") from None
            time.sleep(0.02)


class ServerThread:
    """Run an ASGI app under a real uvicorn server in a background thread with its own event loop.

    ``port=None`` (default) lets the OS pick a port atomically (no free_port race); pass an explicit
    port to restart a server on the same address. ``ws`` defaults to ``"websockets-sansio"`` because
    uvicorn's legacy ``"websockets"`` implementation emits a UvicornDeprecationWarning at import,
    which the test suite turns into an error. ``log_config=None`` keeps uvicorn from reconfiguring
    logging, so its messages propagate to pytest's log capture. ``timeout_graceful_shutdown`` is bounded
    so a request hanging at teardown cannot block the suite forever.

    Usage::

        with ServerThread(app) as server:
            httpx.get(server.url + "/health")
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        lifespan: str = "auto",
        ws: str = "websockets-sansio",
        log_level: str = "warning",
        startup_timeout: float = 10.0,
        **config_kwargs: Any,
    ) -> None:
        config_kwargs.setdefault("log_config", None)
        config_kwargs.setdefault("timeout_graceful_shutdown", 3)
        config_kwargs.setdefault("access_log", False)
        self.app = app
        self.host = host
        self.startup_timeout = startup_timeout
        self.config = uvicorn.Config(
            app, host=host, port=port or 0, lifespan=lifespan, ws=ws, log_level=log_level, **config_kwargs
        )
        self.server = uvicorn.Server(self.config)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._port: int | None = port

    @property
    def port(self) -> int:
        """The bound port (known after start() when the OS picked it)."""
        if self._port is None:
            raise RuntimeError("server not started yet")
        return self._port

    @property
    def url(self) -> str:
        """Base HTTP URL without trailing slash, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """Base WebSocket URL, e.g. ``ws://127.0.0.1:54321``."""
        return f"ws://{self.host}:{self.port}"

    def _run(self) -> None:
        try:
            self.server.run()
        except BaseException as exc:  # uvicorn reports startup failure via sys.exit
            self._error = exc

    def start(self) -> ServerThread:
        """Start the thread and wait until uvicorn is accepting connections."""
        if self._thread is not None:
            raise RuntimeError("ServerThread can only be started once; create a new one")
        self._thread = threading.Thread(target=self._run, name=f"uvicorn-{self.host}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"uvicorn failed to start (see log output): {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"uvicorn did not start within {self.startup_timeout}s")
            time.sleep(0.01)
        if self._port is None:
            sockets = self.server.servers[0].sockets
            self._port = int(sockets[0].getsockname()[1])
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit, escalate to force_exit if it lingers, and join the thread."""
        if self._thread is None:
            return
        self.server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.server.force_exit = True
            self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError("uvicorn thread did not stop")

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _redis_command(port: int, *args: str, timeout: float = 1.0) -> bytes:
    """Send one RESP command over a fresh socket and return the raw first reply line."""
    payload = f"*{len(args)}\r\n".encode() + b"".join(
        f"${len(a.encode())}\r\n".encode() + a.encode() + b"\r\n" for a in args
    )
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply


class RedisServer:
    """A throwaway ``redis-server`` on 127.0.0.1 (no persistence) for tests.

    ``stop()`` and ``start()`` keep the same port, so a test can kill Redis mid-test and bring it
    back where the code under test expects it. Data does not survive a stop (persistence is off).
    """

    def __init__(self, port: int | None = None, *, binary: str = "redis-server", startup_timeout: float = 10.0) -> None:
        path = shutil.which(binary)
        if path is None:
            raise RuntimeError(f"{binary!r} not found on PATH; install it (apt-get install redis-server)")
        self.binary = path
        self.startup_timeout = startup_timeout
        self._fixed_port = port is not None
        self.port: int = port if port is not None else free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        # mkdtemp rather than TemporaryDirectory: the latter warns (ResourceWarning) if never closed.
        self._dir = tempfile.mkdtemp(prefix="aigw-redis-")
        self._log_path = os.path.join(self._dir, "redis.log")

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """Whether the redis-server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def _spawn(self) -> subprocess.Popen[bytes]:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self._dir,
            "--daemonize",
            "no",
            "--logfile",
            self._log_path,
        ]
        return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> RedisServer:
        """Start redis-server (again) and wait until it answers PING."""
        if self.running:
            return self
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            proc = self._spawn()
            self._proc = proc
            deadline = time.monotonic() + self.startup_timeout
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    if _redis_command(self.port, "PING").startswith(b"+PONG"):
                        return self
                except OSError:
                    pass
                time.sleep(0.02)
            self._terminate()
            if attempt + 1 < attempts:
                self.port = free_port()  # probably lost the free_port race; try another port
        raise RuntimeError(f"redis-server did not come up on port {self.port}; log: {self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of redis-server's log, for error messages."""
        try:
            with open(self._log_path, encoding="utf-8", errors="replace") as fh:
                return "".join(fh.readlines()[-lines:])
        except OSError:
            return "<no log>"

    def command(self, *args: str, timeout: float = 1.0) -> bytes:
        """Send one command on a connection of its own; the raw first reply line (``b"+OK\\r\\n"``)."""
        return _redis_command(self.port, *args, timeout=timeout)

    def flushall(self) -> None:
        """Drop all keys (used between tests)."""
        reply = _redis_command(self.port, "FLUSHALL")
        if not reply.startswith(b"+OK"):
            raise RuntimeError(f"FLUSHALL failed: {reply!r}")

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def stop(self) -> None:
        """Terminate redis-server (same port is reused by the next start())."""
        self._terminate()

    def close(self) -> None:
        """Stop the server and remove its scratch directory."""
        self._terminate()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class RedisClusterServer(RedisServer):
    """A one-node Redis Cluster owning every slot: cluster rules (CROSSSLOT, MOVED) are enforced."""

    def _spawn(self) -> subprocess.Popen[bytes]:
        nodes = os.path.join(self._dir, f"nodes-{self.port}.conf")
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", self._dir, "--logfile", self._log_path, "--cluster-enabled", "yes"]
        args += ["--cluster-config-file", nodes]
        return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> RedisClusterServer:
        super().start()
        _redis_command(self.port, "CLUSTER", "ADDSLOTSRANGE", "0", "16383")
        deadline = time.monotonic() + 10
        while b"cluster_state:ok" not in _redis_command(self.port, "CLUSTER", "INFO"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster did not come up: {self.log_tail()}")
            time.sleep(0.05)
        return self
