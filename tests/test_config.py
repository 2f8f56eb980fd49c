from __future__ import annotations

import pytest

from aigw_asgi.config import Config, ConfigError, config_from_dict, load_config


def test_defaults_are_the_embedded_gateway() -> None:
    config = load_config(None)
    assert isinstance(config, Config)
    assert config.server.host == "127.0.0.1" and config.server.port == 8787
    assert config.cache.storage == "memory://" and config.rate_limit.storage == "memory://"
    assert config.logs.store == "sqlite:///aigw.db"
    assert config.gateway.mount_path == "/"


def test_full_spec_example_loads(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AIGW_TOKEN", "tok-123456789")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    path = tmp_path / "aigw.toml"
    path.write_text(
        """
[server]
host = "0.0.0.0"
port = 9000
[gateway]
id = "prod"
authentication = true
tokens = [{ name = "app", token = "env:AIGW_TOKEN" }, { name = "ci", sha256 = "%s" }]
[cache]
ttl = 300
storage = "redis://127.0.0.1:6379/0"
[rate_limit]
limit = 100
period = 60
technique = "sliding"
[[rate_limit.rules]]
limit = 10
period = 60
scope = ["token", "metadata.user"]
unit = "tokens"
[retries]
max_attempts = 3
backoff = "exponential"
[providers.openai]
base_url = "https://api.openai.com/v1"
api_key = "env:OPENAI_API_KEY"
[providers.custom-local]
base_url = "http://127.0.0.1:8000/v1"
[routes.fast]
strategy = "round-robin"
targets = [{ provider = "openai", model = "gpt-4o-mini" }, { provider = "groq", model = "llama", weight = 2 }]
"""
        % ("ab" * 32)
    )
    config = load_config(path)
    assert config.gateway.tokens[0].token == "tok-123456789"
    assert config.providers["openai"].api_key == "sk-from-env"
    assert config.rate_limit.rules[0].scope == ["token", "metadata.user"]
    assert config.routes["fast"].targets[1].weight == 2.0
    # Secrets stay out of repr, so a config printed into a log leaks nothing.
    assert "sk-from-env" not in repr(config) and "tok-123456789" not in repr(config)


def test_aigw_config_env_var(tmp_path, monkeypatch) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[cache]\nttl = 60\n")
    monkeypatch.setenv("AIGW_CONFIG", str(path))
    assert load_config().cache.ttl == 60


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"cache": {"ttll": 1}}, "cache.ttll: unknown key"),
        ({"nope": {}}, "nope: unknown key"),
        ({"rate_limit": {"technique": "leaky"}}, "rate_limit.technique: expected one of"),
        ({"cache": {"ttl": "5m"}}, "cache.ttl: expected an integer"),
        ({"cache": {"ttl": 30}}, "cache.ttl: expected 0 or 60"),
        ({"budgets": [{"usd": 0}]}, "budgets[0].usd: expected more than 0"),
        ({"budgets": [{"usd": 5, "period": "year"}]}, "budgets[0].period: expected one of"),
        ({"budgets": [{"usd": 5, "scope": ["ip"]}]}, "budgets[0].scope: unknown scope 'ip'"),
        ({"budgets": [{"usd": 5, "name": "a"}, {"usd": 6, "name": "a"}]}, "budgets[1].name: budget name 'a'"),
        ({"budgets": [{"usd": 5, "name": "key:x"}]}, "budgets[0].name: names starting with 'key:'"),
        ({"spend": {"unknown_price": "maybe"}}, "spend.unknown_price: expected one of"),
        ({"spend": {"storage": "mysql://x"}}, "spend.storage: expected memory://"),
        ({"keys": {"refresh_ms": 5000}}, "keys.refresh_ms: expected 50 to 1000"),
        ({"gateway": {"tokens": [{"name": "a"}]}}, "gateway.tokens[0]: set exactly one of token or sha256"),
        ({"gateway": {"tokens": [{"name": "a", "sha256": "xyz"}]}}, "gateway.tokens[0].sha256"),
        ({"retries": {"max_attempts": 9}}, "retries.max_attempts: expected 1 to 5"),
        ({"providers": {"openai": {"api_key": "env:AIGW_SURELY_UNSET"}}}, "AIGW_SURELY_UNSET is not set"),
        ({"providers": {"openai": {"base_url": "ftp://x"}}}, "providers.openai.base_url"),
        ({"rate_limit": {"rules": [{"limit": 1, "period": 1, "scope": ["planet"]}]}}, "unknown scope 'planet'"),
        ({"server": {"port": True}}, "server.port: expected an integer"),
        ({"server": {"gc_threshold": 100}}, "server.gc_threshold: must be 0"),
        ({"logs": {"store": "mysql://x"}}, "logs.store"),
    ],
)
def test_bad_values_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config_from_dict(data)


def test_bad_toml_and_missing_file(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[cache\nttl=")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
