"""A throwaway PostgreSQL for the keys and budgets tests, and its pytest fixtures.

``initdb`` in a temp dir, ``pg_ctl`` on a free port, trust authentication, no durability (tests
need speed, not crash safety). PostgreSQL refuses to run as root, so as root every command runs
as the ``postgres`` user. The store branch (issue 16) brings the same server to tests/servers.py;
once both are on main, these fixtures can become that one.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from tests.servers import free_port


def postgres_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for directory in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


class Postgres:
    def __init__(self) -> None:
        initdb, pg_ctl = postgres_bin("initdb"), postgres_bin("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
        self.initdb, self.pg_ctl = initdb, pg_ctl
        self.psql = postgres_bin("psql") or "psql"
        self.port = free_port()
        self._dir = tempfile.mkdtemp(prefix="aigw-keys-pg-")
        self.data = os.path.join(self._dir, "data")
        self._log = os.path.join(self._dir, "postgres.log")
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self._dir, "postgres", "postgres")

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = ["runuser", "-u", "postgres", "--", *args] if self._as_postgres else list(args)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=self._dir)

    def start(self) -> Postgres:
        done = self._run(self.initdb, "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stdout}{done.stderr}")
        options = f"-p {self.port} -k {self._dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
        done = self._run(self.pg_ctl, "-D", self.data, "-l", self._log, "-o", options, "-w", "-t", "60", "start")
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {done.stdout}{done.stderr}")
        return self

    def create_database(self, name: str) -> str:
        args = ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres", "-c"]
        done = self._run(self.psql, *args, f'CREATE DATABASE "{name}"')
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        self._run(self.pg_ctl, "-D", self.data, "-m", "fast", "-w", "stop")
        shutil.rmtree(self._dir, ignore_errors=True)


@pytest.fixture(scope="session")
def keys_postgres() -> Iterator[Postgres]:
    if postgres_bin("initdb") is None or postgres_bin("pg_ctl") is None:
        pytest.skip("PostgreSQL not installed (apt-get install postgresql)")
    server = Postgres().start()
    yield server
    server.close()


_databases = itertools.count(1)


@pytest.fixture
def pg_url(keys_postgres: Postgres) -> str:
    """A new, empty database."""
    return keys_postgres.create_database(f"keys{next(_databases)}")
