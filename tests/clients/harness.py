"""Run one `Case` of the client matrix against a real ``aigw serve`` and the fake provider.

`Harness.check` makes the SDK call twice and asserts every column of the case: the parsed
answer, the provider path and the single credential header the fake received, the log row read
back through the admin API (provider, model, path, tokens, cost against the price table), and a
cache HIT for the identical repeat that never reaches the provider. Passing cases are recorded
in `RESULTS`, which ``conftest.py`` writes out for ``matrix.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from aigw_asgi.config import PriceConfig
from aigw_asgi.context import Usage
from aigw_asgi.telemetry.cost import PriceTable, compute_cost
from tests.clients.cases import NONE, TEXT, Case
from tests.conftest import fake_providers
from tests.fakes.upstream import FakeUpstream
from tests.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
CREDENTIAL_HEADERS = ("authorization", "x-api-key", "api-key", "x-goog-api-key")
RESULTS: dict[str, dict[str, Any]] = {}

# Models the built-in price table does not list, priced here (USD per token) so rows get a cost.
PRICES: dict[str, PriceConfig] = {
    "gpt-4o-transcribe": PriceConfig(input=6e-6, output=1e-5),
    "huggingface/meta-llama/Llama-3.1-8B-Instruct": PriceConfig(input=2e-7, output=2e-7),
    "replicate/meta/meta-llama-3-8b-instruct": PriceConfig(input=5e-8, output=2.5e-7),
    "ollama/llama3.2": PriceConfig(input=0.0, output=0.0),
}


def write_config(path: Path, fake_url: str) -> Path:
    lines = ['[gateway]\nid = "clients"\n', '[logs]\nstore = "memory://"\n', "[cache]\nttl = 300\n"]
    for name, table in fake_providers(fake_url).items():
        lines.append(f'[providers.{name}]\nbase_url = "{table["base_url"]}"\n')
    for model, price in PRICES.items():
        lines.append(f'[prices."{model}"]\ninput = {price.input!r}\noutput = {price.output!r}\n')
    path.write_text("\n".join(lines))
    return path


class AigwServe:
    """``python -m aigw_asgi serve`` on a free port, as a user runs it."""

    def __init__(self, config: Path) -> None:
        self.port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env = {k: v for k, v in env.items() if not k.startswith("OTEL_")}
        cmd = [sys.executable, "-m", "aigw_asgi", "serve", "--config", str(config), "--port", str(self.port)]
        self._log = (config.parent / "aigw.log").open("wb")
        self.proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port, timeout=30)
        except TimeoutError:
            output = self.output()
            self.stop()
            raise RuntimeError(f"aigw serve did not start:\n{output}") from None
        self.url = f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


class Harness:
    """The gateway under test, its admin API, and the fake provider behind it."""

    def __init__(self, server: AigwServe, fake: FakeUpstream) -> None:
        self.server = server
        self.url = server.url
        self.fake = fake
        self.admin = httpx.Client(base_url=f"{server.url}/admin", timeout=10)
        self.prices = PriceTable(PRICES)

    def close(self) -> None:
        self.admin.close()

    def rows(self, n: int) -> list[dict[str, Any]]:
        """The newest ``n`` log rows, newest first."""
        resp = self.admin.get("/logs", params={"per_page": n, "order_by": "created_at", "direction": "desc"})
        assert resp.status_code == 200, resp.text
        rows: list[dict[str, Any]] = resp.json()["result"]
        return rows

    def check(self, case: Case, call: Callable[[], str], key: str) -> None:
        """Call twice; assert every column of ``case``; record it as passed."""
        before = len(self.fake.requests)
        assert call() == TEXT, "the SDK parsed another answer than the provider sent"
        seen = self.fake.requests[before:]
        assert [r.path for r in seen] == [case.upstream_path], "one request, at the provider's own path"
        credentials = {h: v for h, v in seen[0].headers.items() if h in CREDENTIAL_HEADERS}
        if case.credential == NONE:
            assert not credentials, credentials
        else:
            assert list(credentials) == [case.credential], credentials
            assert key in credentials[case.credential]
        (miss,) = self.rows(1)
        assert miss["cache_status"] == "MISS" and miss["success"] is True, miss
        assert (miss["provider"], miss["model"], miss["path"]) == (case.provider, case.model, case.gateway_path)
        assert (miss["tokens_in"], miss["tokens_out"]) == case.tokens
        assert miss["stream"] is case.stream
        if case.cost:
            usage = Usage(tokens_in=case.tokens[0], tokens_out=case.tokens[1])
            expected, _ = compute_cost(usage, self.prices.price_for(case.model, case.provider))
            assert expected is not None and miss["cost"] == pytest.approx(expected), (miss["cost"], expected)
        else:
            assert miss["cost"] is None
        hit: dict[str, Any] | None = None
        if case.cache:
            assert call() == TEXT, "the cached answer parses to the same result"
            assert len(self.fake.requests) == before + 1, "the repeat never reached the provider"
            hit = next(r for r in self.rows(2) if r["id"] != miss["id"])
            assert hit["cache_status"] == "HIT" and hit["model"] == case.model and hit["cost"] == 0, hit
        RESULTS[case.id] = {
            "passed": True,
            "upstream_path": seen[0].path,
            "credential": case.credential,
            "tokens": [miss["tokens_in"], miss["tokens_out"]],
            "cost": miss["cost"],
            "cache": None if hit is None else hit["cache_status"],
        }
