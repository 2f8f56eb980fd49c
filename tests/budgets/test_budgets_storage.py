"""Which storage budgets use, and the configurations that would split them between workers (SPEC §16)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from aigw_asgi.budgets.ledger import MemoryLedger
from aigw_asgi.budgets.redis import RedisLedger
from aigw_asgi.budgets.sqlite import SQLiteLedger
from aigw_asgi.budgets.storage import make_ledger, split_per_worker
from aigw_asgi.config import config_from_dict
from tests.servers import free_port


def test_budgets_live_in_the_log_stores_database_unless_told_otherwise(tmp_path: Path) -> None:
    sqlite = config_from_dict({"logs": {"store": f"sqlite:///{tmp_path / 'a.db'}"}})
    assert isinstance(make_ledger(sqlite), SQLiteLedger)
    assert isinstance(make_ledger(config_from_dict({"logs": {"store": "memory://"}})), MemoryLedger)
    redis = config_from_dict({"logs": {"store": "memory://"}, "spend": {"storage": "redis://127.0.0.1:1/0"}})
    assert isinstance(make_ledger(redis), RedisLedger)


def test_memory_budgets_or_keys_with_several_workers_are_refused() -> None:
    memory = {"logs": {"store": "memory://"}}
    assert split_per_worker(config_from_dict({**memory, "budgets": [{"usd": 5}]}), 1) == []
    (error,) = split_per_worker(config_from_dict({**memory, "budgets": [{"usd": 5}]}), 4)
    assert "4 workers" in error and "spend.storage" in error and "up to 4x" in error
    keyed = config_from_dict({**memory, "gateway": {"authentication": True}})
    assert len(split_per_worker(keyed, 2)) == 2  # per-key budgets and the keys themselves
    shared = {"logs": {"store": "redis://127.0.0.1:6379/0"}, "budgets": [{"usd": 5}]}
    assert split_per_worker(config_from_dict({**shared, "gateway": {"authentication": True}}), 8) == []
    assert split_per_worker(config_from_dict(memory), 8) == []  # nothing to split


def test_aigw_serve_refuses_to_start_split_budgets(tmp_path: Path) -> None:
    config = tmp_path / "aigw.toml"
    config.write_text('[logs]\nstore = "memory://"\n[[budgets]]\nusd = 10\n')
    cmd = [sys.executable, "-m", "aigw_asgi", "serve", "--config", str(config), "--port", str(free_port())]
    result = subprocess.run(cmd + ["--workers", "2"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "budget counters in memory://" in result.stderr


def test_the_docs_standalone_snippet_builds() -> None:
    """docs/keys-and-budgets.md shows the layer alone: the snippet runs as written."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "keys-and-budgets.md").read_text()
    section = text.split("## Using the middlewares alone", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "keys-and-budgets.md", "exec"), namespace)
    app = namespace["app"]
    assert app.budgets[0].scope == ("metadata.team",) and app.prices.price_for("my-model") is not None
