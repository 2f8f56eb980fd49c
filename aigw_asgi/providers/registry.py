"""Providers as data: where each one lives, how it authenticates, which wire format it speaks.

URL joining (SPEC §2): each provider has a ``base_url`` that includes its usual version segment
(``https://api.openai.com/v1``) and that segment as ``version_prefix``. A client path that already
starts with the version (``/openai/v1/chat/completions``) is joined to the base *without* it, so
both the documented ``/openai/chat/completions`` and the SDK-style ``/openai/v1/...`` work and the
version is never doubled. ``alt_prefixes`` are sibling versions on the same host (Gemini ``v1``
next to ``v1beta``, Cohere ``v2`` next to ``v1``, Workers AI ``v1`` next to ``run``).

A config ``base_url`` override keeps the default version prefix only if it ends with it
(``http://127.0.0.1:9100/v1``); otherwise the path is plainly appended, as for custom providers.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field, replace

from ..config import Config, ProviderConfig
from ..errors import ConfigError


@dataclass(frozen=True, slots=True)
class ProviderKey:
    alias: str
    key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    base_url: str
    version_prefix: str = ""
    alt_prefixes: tuple[str, ...] = ()
    auth_header: str = "authorization"  # lowercase
    auth_scheme: str = "Bearer"  # "" = the bare key
    format: str = "openai"  # usage wire format, see providers/usage.py
    otel_name: str = "_OTHER"  # gen_ai.provider.name
    path_params: tuple[str, ...] = ()  # leading path segments that fill {placeholders} in base_url
    query_key: str | None = None  # a credential that may come as a query parameter (Gemini ?key=)
    keys: tuple[ProviderKey, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()  # extra headers added upstream when absent
    stream_usage: bool = False  # accepts OpenAI's stream_options.include_usage (injected for usage)

    def credential_value(self, key: str) -> str:
        return f"{self.auth_scheme} {key}" if self.auth_scheme else key


# host base with its version segment; header; scheme; usage format; OTel provider name
BUILTINS: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider("openai", "https://api.openai.com/v1", "v1", otel_name="openai", stream_usage=True),
        Provider(
            "azure-openai",
            "https://{resource}.openai.azure.com/openai/deployments/{deployment}",
            auth_header="api-key",
            auth_scheme="",
            otel_name="azure.ai.openai",
            stream_usage=True,
            path_params=("resource", "deployment"),
        ),
        Provider(
            "anthropic",
            "https://api.anthropic.com/v1",
            "v1",
            auth_header="x-api-key",
            auth_scheme="",
            format="anthropic",
            otel_name="anthropic",
            headers=(("anthropic-version", "2023-06-01"),),
        ),
        Provider(
            "workers-ai",
            "https://api.cloudflare.com/client/v4/accounts/{account_id}/ai/run",
            "run",
            ("v1",),
            format="workers-ai",
            otel_name="cloudflare.workers_ai",
        ),
        Provider("huggingface", "https://api-inference.huggingface.co/models", otel_name="huggingface"),
        Provider("replicate", "https://api.replicate.com/v1", "v1", otel_name="replicate"),
        Provider("groq", "https://api.groq.com/openai/v1", "v1", otel_name="groq", stream_usage=True),
        Provider("mistral", "https://api.mistral.ai/v1", "v1", otel_name="mistral_ai"),
        Provider("cohere", "https://api.cohere.ai/v1", "v1", ("v2",), format="cohere", otel_name="cohere"),
        Provider(
            "google-ai-studio",
            "https://generativelanguage.googleapis.com/v1beta",
            "v1beta",
            ("v1", "v1alpha"),
            auth_header="x-goog-api-key",
            auth_scheme="",
            format="gemini",
            otel_name="gcp.gemini",
            query_key="key",
        ),
        Provider("deepseek", "https://api.deepseek.com", otel_name="deepseek", stream_usage=True),
        Provider("perplexity-ai", "https://api.perplexity.ai", otel_name="perplexity"),
        Provider("cerebras", "https://api.cerebras.ai/v1", "v1", otel_name="cerebras", stream_usage=True),
        Provider("grok", "https://api.x.ai/v1", "v1", otel_name="x_ai", stream_usage=True),
        Provider("openrouter", "https://openrouter.ai/api/v1", "v1", otel_name="openrouter", stream_usage=True),
        Provider("ollama", "http://127.0.0.1:11434", format="ollama", otel_name="ollama"),
    )
}

_SLUG = re.compile(r"^custom-[a-z0-9][a-z0-9-]{0,62}$")
_VERSION = re.compile(r"^v\d+(?:alpha|beta)?\d*$")
_HOST_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")


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
    return replace(base, **changes)  # type: ignore[arg-type]


class ProviderRegistry:
    """The providers a gateway knows, with BYOK keys, built once from config."""

    def __init__(self, providers: dict[str, Provider]):
        self._providers = providers
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
        return cls(providers)

    def get(self, name: str) -> Provider | None:
        return self._providers.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._providers

    def names(self) -> list[str]:
        return sorted(self._providers)

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


def join_url(provider: Provider, path: str) -> tuple[str, dict[str, str]]:
    """The upstream URL for ``path`` (already validated, no leading slash) and the path params.

    Raises ``ValueError`` with a user-facing message when required path params are missing or
    not valid host labels (they become part of the upstream host name for Azure).
    """
    params: dict[str, str] = {}
    base = provider.base_url
    if provider.path_params:
        parts = path.split("/", len(provider.path_params))
        if len(parts) <= len(provider.path_params):
            raise ValueError(f"expected /{provider.name}/{'/'.join('{' + p + '}' for p in provider.path_params)}/...")
        for pname, value in zip(provider.path_params, parts, strict=False):
            if not _HOST_LABEL.match(value):
                raise ValueError(f"invalid {pname} in path")
            params[pname] = value
            base = base.replace("{" + pname + "}", value)
        path = parts[-1]
    if "{" in base:
        raise ValueError(f"provider {provider.name} is not configured (base_url has placeholders)")
    prefix = provider.version_prefix
    if prefix:
        if path == prefix or path.startswith(prefix + "/"):
            return base[: -len(prefix)] + path, params
        for alt in provider.alt_prefixes:
            if path == alt or path.startswith(alt + "/"):
                return base[: -len(prefix)] + path, params
    return f"{base}/{path}" if path else base, params


def relative_path(provider: Provider, path: str) -> str:
    """``path`` relative to the provider base: the same upstream URL always gives the same string.

    ``v1/chat/completions`` and ``chat/completions`` both reach ``{base}/chat/completions`` on a
    base ending in ``/v1``, so caches key them alike.
    """
    prefix = provider.version_prefix
    if prefix and (path == prefix or path.startswith(prefix + "/")):
        return path[len(prefix) + 1 :]
    return path


def model_from(provider: Provider, path: str, params: dict[str, str], body: object) -> str | None:
    """The requested model, from the body or, for path-addressed providers, from the path."""
    if isinstance(body, dict):
        model = body.get("model")
        if isinstance(model, str) and model:
            return model
    if "deployment" in params:
        return params["deployment"]
    if provider.format == "gemini":
        _, sep, rest = path.partition("models/")
        if sep:
            return rest.split(":", 1)[0] or None
    if provider.name == "workers-ai" and path.startswith(("@cf/", "@hf/", "run/@")):
        return path.removeprefix("run/")
    if provider.name == "huggingface" and path:
        return path
    return None
