"""Real servers for tests: any ASGI app under uvicorn in a thread, a throwaway redis-server, a
Redis Cluster of three masters, and a throwaway PostgreSQL (``initdb`` + ``pg_ctl``).

Why: the gateway must be tested over real sockets (streaming, disconnects, timeouts and connection
reuse behave differently through an in-process transport), and rate-limit/cache code needs a real
Redis that a test can kill and bring back. No pytest dependency, so scripts and benchmarks can use
these too.
"""

from __future__ import annotations

import glob
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

__all__ = [
    "PostgresServer",
    "RedisCluster",
    "RedisClusterServer",
    "RedisServer",
    "ServerThread",
    "free_port",
    "wait_for_port",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (there is an inherent small race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cluster_port() -> int:
    """A free port for a Redis Cluster node: its bus listens on port + 10000, so both must be free
    and the port at most 55535 (the OS's ephemeral range reaches 60999: redis-server refuses those)."""
    import random

    for _ in range(200):
        port = random.randint(20000, 55535)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


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
        self.port: int = port if port is not None else self._pick_port()
        self._proc: subprocess.Popen[bytes] | None = None
        # mkdtemp rather than TemporaryDirectory: the latter warns (ResourceWarning) if never closed.
        self._dir = tempfile.mkdtemp(prefix="aigw-redis-")
        self._log_path = os.path.join(self._dir, "redis.log")

    @staticmethod
    def _pick_port() -> int:
        return free_port()

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
                self.port = self._pick_port()  # probably lost the free_port race; try another port
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

    def dbsize(self) -> int:
        """How many keys this server holds."""
        return int(_redis_command(self.port, "DBSIZE").strip().lstrip(b":"))

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

    _pick_port = staticmethod(cluster_port)
    _cluster_args: tuple[str, ...] = ()

    def _spawn(self) -> subprocess.Popen[bytes]:
        nodes = os.path.join(self._dir, f"nodes-{self.port}.conf")
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", self._dir, "--logfile", self._log_path, "--cluster-enabled", "yes"]
        args += ["--cluster-config-file", nodes, *self._cluster_args]
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


class RedisCluster:
    """A real multi-node Redis Cluster on loopback: ``masters`` nodes (three by default) joined by
    ``redis-cli --cluster create``, so keys spread over nodes and clients must follow MOVED.

    ``url`` is a ``redis+cluster://`` seed URL (the gateway's cache and rate-limit storages accept
    it); ``kill(i)``/``restart(i)`` stop and bring back one node on its port.
    """

    def __init__(self, masters: int = 3) -> None:
        if shutil.which("redis-cli") is None:
            raise RuntimeError("redis-cli not found on PATH; install it (apt-get install redis-server)")
        self.nodes = [_ClusterNode() for _ in range(masters)]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def start(self) -> RedisCluster:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        result = subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {result.stdout}{result.stderr}")
        self.wait_ok()
        return self

    def wait_ok(self, timeout: float = 20.0) -> None:
        """Until every node reports ``cluster_state:ok`` (slots assigned and gossip settled)."""
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            while b"cluster_state:ok" not in _redis_reply(node.port, "CLUSTER", "INFO"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cluster did not come up: {node.log_tail()}")
                time.sleep(0.05)

    def flushall(self) -> None:
        for node in self.nodes:
            node.flushall()

    def close(self) -> None:
        for node in self.nodes:
            node.close()

    def __enter__(self) -> RedisCluster:
        try:
            return self.start()
        except BaseException:
            self.close()  # the nodes that did start must not outlive a failed setup
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _ClusterNode(RedisClusterServer):
    """One empty cluster-enabled redis-server (its slots come from ``redis-cli --cluster create``)."""

    _cluster_args = ("--cluster-node-timeout", "2000")

    def start(self) -> _ClusterNode:
        RedisServer.start(self)  # no slots of its own: the cluster assigns them
        return self

    def flushall(self) -> None:
        # FLUSHALL on a replica-less master; keys of other slots live on the other nodes.
        _redis_reply(self.port, "FLUSHALL")


def _redis_reply(port: int, *args: str) -> bytes:
    """Like `_redis_command` but reads a whole bulk reply (CLUSTER INFO spans many lines)."""
    payload = f"*{len(args)}\r\n".encode() + b"".join(
        f"${len(a.encode())}\r\n".encode() + a.encode() + b"\r\n" for a in args
    )
    with socket.create_connection(("127.0.0.1", port), timeout=2.0) as sock:
        sock.sendall(payload)
        reply = sock.recv(65536)
        if reply.startswith(b"$"):
            size = int(reply[1 : reply.index(b"\r\n")])
            while len(reply) < size + len(str(size)) + 5:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
    return reply


def postgres_bin(name: str) -> str | None:
    """A PostgreSQL server binary (``initdb``, ``pg_ctl``): on PATH or under Debian's
    /usr/lib/postgresql/VERSION/bin (newest first)."""
    found = shutil.which(name)
    if found:
        return found
    for directory in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _version_key(path: str) -> tuple[int, ...]:
    version = path.split("/")[-2]
    return tuple(int(p) for p in version.split(".") if p.isdigit())


class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (``initdb`` in a temp dir, ``pg_ctl`` on a free
    port, trust authentication, no durability: tests need speed, not crash safety).

    PostgreSQL refuses to run as root, so as root every command runs as the ``postgres`` user
    (``runuser``), which owns the data directory. ``stop()``/``start()`` keep the port and the
    data, so a test can take the database away mid-run and bring it back.
    """

    def __init__(self, port: int | None = None, *, settings: dict[str, str] | None = None) -> None:
        initdb, pg_ctl = postgres_bin("initdb"), postgres_bin("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise RuntimeError("PostgreSQL server binaries not found; install them (apt-get install postgresql)")
        self.initdb, self.pg_ctl = initdb, pg_ctl
        self.psql = postgres_bin("psql") or "psql"
        self.port: int = port if port is not None else free_port()
        self.settings = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", **(settings or {})}
        self._dir = tempfile.mkdtemp(prefix="aigw-pg-")
        self.data = os.path.join(self._dir, "data")
        self._log_path = os.path.join(self._dir, "postgres.log")
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self._dir, "postgres", "postgres")
        self._initialised = False
        self.running = False

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        cmd = ["runuser", "-u", "postgres", "--", *args] if self._as_postgres else list(args)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self._dir)

    def start(self) -> PostgresServer:
        if self.running:
            return self
        if not self._initialised:
            args = ["-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale"]
            done = self._run(self.initdb, *args)
            if done.returncode != 0:
                raise RuntimeError(f"initdb failed: {done.stdout}{done.stderr}")
            self._initialised = True
        options = f"-p {self.port} -k {self._dir} -c listen_addresses=127.0.0.1"
        options += "".join(f" -c {k}={v}" for k, v in self.settings.items())
        done = self._run(self.pg_ctl, "-D", self.data, "-l", self._log_path, "-o", options, "-w", "-t", "60", "start")
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {done.stdout}{done.stderr}{self.log_tail()}")
        self.running = True
        return self

    def stop(self) -> None:
        """Stop the server (``-m fast``: open connections are cut, as when a database goes away)."""
        if self.running:
            self._run(self.pg_ctl, "-D", self.data, "-m", "fast", "-w", "stop")
            self.running = False

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement through ``psql`` and return its unaligned output."""
        done = self._run(
            self.psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database,
            "-v", "ON_ERROR_STOP=1", "-At", "-c", statement,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr}")
        return done.stdout

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self._log_path, encoding="utf-8", errors="replace") as fh:
                return "".join(fh.readlines()[-lines:])
        except OSError:
            return "<no log>"

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
