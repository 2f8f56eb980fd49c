"""Providers as data: where each one lives, how it authenticates, which wire format it speaks.

URL joining (SPEC §2): each provider has a ``base_url`` that includes its usual version segment
(``https://api.openai.com/v1``) and that segment as ``version_prefix``. A client path that already
starts with the version (``/openai/v1/chat/completions``) is joined to the base *without* it, so
both the documented ``/openai/chat/completions`` and the SDK-style ``/openai/v1/...`` work and the
version is never doubled. ``alt_prefixes`` are sibling versions on the same host (Gemini ``v1``
next to ``v1beta``, Cohere ``v2`` next to ``v1``, Workers AI ``v1`` next to ``run``).

A config ``base_url`` override keeps the default version prefix only if it ends with it
(``http://127.0.0.1:9100/v1``); otherwise the path is plainly appended, as for custom providers.

A provider's own SDK pointed at ``/{provider}`` must work too, so the registry also records the
paths those SDKs produce (checked against each official SDK by ``tests/clients/``):

- ``sdk_root``: a path the SDK puts in front of the version which the base already includes
  (the groq SDK calls ``{base_url}/openai/v1/…``; Groq's base is ``…/openai/v1``).
- ``layouts``: whole path shapes rewritten to the gateway's canonical path, for providers whose
  SDK builds several (the AzureOpenAI client's ``{endpoint}/openai/deployments/{d}/…``,
  ``{endpoint}/openai/v1/…`` and ``{base_url}/deployments/{model}/…``).
- ``openai_paths``: path prefixes where the provider speaks OpenAI's wire format rather than its
  own (Ollama's ``/v1/…``, Gemini's ``v1beta/openai/…``), so usage is read in that format.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import replace

from ..config import Config, ProviderConfig
from ..errors import ConfigError, UnknownByokAlias
from .builtins import BUILTINS
from .spec import Layout, Provider, ProviderKey, RealtimeAPI
from .urls import canonical_path, dialect, join_url, model_from, realtime_endpoint, relative_path

__all__ = [
    "BUILTINS",
    "Layout",
    "Provider",
    "ProviderKey",
    "ProviderRegistry",
    "RealtimeAPI",
    "canonical_path",
    "dialect",
    "join_url",
    "model_from",
    "realtime_endpoint",
    "relative_path",
]

_SLUG = re.compile(r"^custom-[a-z0-9][a-z0-9-]{0,62}$")
_VERSION = re.compile(r"^v\d+(?:alpha|beta)?\d*$")


def _keys(name: str, cfg: ProviderConfig) -> tuple[ProviderKey, ...]:
    keys = [ProviderKey(k.alias, k.key) for k in cfg.api_keys]
    if cfg.api_key is not None:
        if any(k.alias == "default" for k in keys):
            raise ConfigError(f"providers.{name}: api_key and an api_keys entry with alias 'default'")
        keys.insert(0, ProviderKey("default", cfg.api_key))
    return tuple(keys)


def _configured(name: str, base: Provider | None, cfg: ProviderConfig) -> Provider:
    if base is None:  # custom-{slug}
        if cfg.base_url is None:
            raise ConfigError(f"providers.{name}.base_url: required for a custom provider")
        url = cfg.base_url.rstrip("/")
        version = _VERSION.match(url.rsplit("/", 1)[-1])
        base = Provider(name, url, version.group(0) if version else "", stream_usage=True)
    changes: dict[str, object] = {"keys": _keys(name, cfg)}
    base_url = base.base_url
    if cfg.base_url is not None:
        base_url = cfg.base_url.rstrip("/")
        if cfg.version_prefix is None and base.version_prefix and not base_url.endswith("/" + base.version_prefix):
            changes["version_prefix"] = ""
            changes["alt_prefixes"] = ()
    if name == "azure-openai" and base_url.endswith("/deployments/{deployment}"):
        # The deployment is read from the path now (several SDK layouts name it differently);
        # older configs spelled the whole deployment URL.
        base_url = base_url.removesuffix("/deployments/{deployment}")
    if "{account_id}" in base_url:
        if cfg.account_id is not None:
            base_url = base_url.replace("{account_id}", cfg.account_id)
    changes["base_url"] = base_url
    if cfg.version_prefix is not None:
        prefix = cfg.version_prefix.strip("/")
        if prefix and not base_url.endswith("/" + prefix):
            raise ConfigError(f"providers.{name}.version_prefix: base_url does not end with /{prefix}")
        changes["version_prefix"] = prefix
    if cfg.auth_header is not None:
        changes["auth_header"] = cfg.auth_header.lower()
    if cfg.auth_scheme is not None:
        changes["auth_scheme"] = cfg.auth_scheme
    if cfg.format is not None:
        changes["format"] = cfg.format
    if cfg.stream_usage is not None:
        changes["stream_usage"] = cfg.stream_usage
    if cfg.headers:
        changes["headers"] = tuple((k.lower(), v) for k, v in cfg.headers.items())
    if cfg.realtime_url is not None:
        changes["realtime"] = replace(base.realtime or RealtimeAPI(), url=cfg.realtime_url.rstrip("/"))
    return replace(base, **changes)  # type: ignore[arg-type]


class ProviderRegistry:
    """The providers a gateway knows, with BYOK keys, built once from config."""

    def __init__(self, providers: dict[str, Provider], refused: frozenset[str] = frozenset()):
        self._providers = providers
        self._refused = refused  # known providers this gateway is configured not to call
        # Round-robin over a provider's keys when the client names no alias (issue: spread load
        # across several keys). itertools.count is atomic enough under asyncio's single thread.
        self._turns = {name: itertools.count() for name in providers}

    @classmethod
    def from_config(cls, config: Config | None = None) -> ProviderRegistry:
        providers = dict(BUILTINS)
        for name, cfg in (config.providers if config else {}).items():
            if name not in BUILTINS and not _SLUG.match(name):
                raise ConfigError(
                    f"providers.{name}: unknown provider (built-ins: {', '.join(sorted(BUILTINS))}; "
                    "custom providers are named custom-{{slug}})"
                )
            providers[name] = _configured(name, BUILTINS.get(name), cfg)
        allowed = _allowed(config, providers) if config is not None else None
        if allowed is None:
            return cls(providers)
        refused = frozenset(providers) - allowed
        return cls({n: p for n, p in providers.items() if n in allowed}, refused)

    def get(self, name: str) -> Provider | None:
        return self._providers.get(name)

    def refusal(self, name: str) -> str:
        """The message for a provider this gateway does not serve (400, code 2008)."""
        if name in self._refused:
            return f"Invalid provider: {name} is not enabled on this gateway"
        return f"Invalid provider: {name[:64]}"

    def __contains__(self, name: object) -> bool:
        return name in self._providers

    def names(self) -> list[str]:
        return sorted(self._providers)

    def stored_key(self, provider: Provider, alias: str | None) -> ProviderKey | None:
        """`pick_key`, where an alias the provider does not have is the client's error (400 code 2040)."""
        key = self.pick_key(provider, alias)
        if key is None and alias is not None:
            configured = ", ".join(repr(k.alias) for k in provider.keys) or "none"
            raise UnknownByokAlias(
                f"Provider '{provider.name}' has no BYOK credential named '{alias[:64]}'. "
                f"Configured aliases: {configured}"
            )
        return key

    def pick_key(self, provider: Provider, alias: str | None) -> ProviderKey | None:
        """The stored key to inject: the named alias, else round-robin over all keys."""
        if not provider.keys:
            return None
        if alias is not None:
            for key in provider.keys:
                if key.alias == alias:
                    return key
            return None
        if len(provider.keys) == 1:
            return provider.keys[0]
        return provider.keys[next(self._turns[provider.name]) % len(provider.keys)]


def _allowed(config: Config, providers: dict[str, Provider]) -> frozenset[str] | None:
    """The names ``[gateway] providers`` / ``only_configured_providers`` allow; None = all."""
    g = config.gateway
    if g.providers is None and not g.only_configured_providers:
        return None
    allowed = set(providers)
    if g.providers is not None:
        for i, name in enumerate(g.providers):
            if name not in providers:
                raise ConfigError(
                    f"gateway.providers[{i}]: unknown provider {name[:64]!r} "
                    "(a built-in, or a custom-{slug} with a [providers] table)"
                )
        allowed = set(g.providers)
    if g.only_configured_providers:
        if not config.providers:
            raise ConfigError("gateway.only_configured_providers: no [providers.NAME] table, so no provider")
        allowed &= set(config.providers)
    return frozenset(allowed)
