"""One real ``aigw serve`` for the whole client matrix, in front of the session's fake provider.

Set ``AIGW_CLIENTS_RESULTS=path.json`` to keep the results; ``python -m tests.clients.matrix
path.json`` renders docs/clients.md from them (see that module).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.harness import RESULTS, AigwServe, Harness, write_config
from tests.fakes.upstream import RunningFake


@pytest.fixture(scope="package")
def _aigw(_fake_upstream_server: RunningFake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AigwServe]:
    config = write_config(tmp_path_factory.mktemp("clients") / "aigw.toml", _fake_upstream_server.url)
    server = AigwServe(config)
    yield server
    server.stop()


@pytest.fixture
def gw(_aigw: AigwServe, fake_upstream: RunningFake) -> Iterator[Harness]:
    """The matrix's gateway, with the fake provider reset for this test."""
    harness = Harness(_aigw, fake_upstream.app)
    yield harness
    harness.close()


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get("AIGW_CLIENTS_RESULTS")
    if target and RESULTS:
        Path(target).write_text(json.dumps(RESULTS, indent=1, sort_keys=True) + "\n")
