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

import functools
import itertools
import re
from dataclasses import dataclass, field, replace

from ..config import Config, ProviderConfig
from ..errors import ConfigError, UnknownByokAlias


@dataclass(frozen=True, slots=True)
class ProviderKey:
    alias: str
    key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Layout:
    """A path shape some client produces, and the canonical path it means (``str.format`` of its groups)."""

    pattern: re.Pattern[str]
    canonical: str

    def rewrite(self, path: str) -> str | None:
        match = self.pattern.match(path)
        return self.canonical.format(**match.groupdict()) if match else None


@dataclass(frozen=True, slots=True)
class RealtimeAPI:
    """A provider's realtime WebSocket (``WS /{provider}/{path}``, see aigw_asgi/realtime/).

    Where it lives: ``root`` is what the client's path is joined to, as for HTTP -- ``{base}``
    (the HTTP ``base_url``), ``{origin}`` (its scheme and host) or ``{origin}/...`` -- with
    http(s) turned into ws(s), so a ``base_url`` override moves the realtime socket along. A
    client that names no path (``/openai?model=…``, Cloudflare's spelling) gets ``path``. A
    configured ``realtime_url`` (``url``) replaces all that: every session goes to that one URL.

    How the key is presented: the provider's ``auth_header`` upstream, always. Clients may bring
    it in that header, in a query parameter (``key_query``) or -- browsers cannot set headers --
    in a subprotocol entry ``{key_subprotocol}<key>``; the gateway moves it into the header.
    """

    root: str = "{base}"
    path: str = ""
    url: str | None = None
    key_subprotocol: str | None = None  # e.g. "openai-insecure-api-key."
    key_query: tuple[str, ...] = ()  # query parameters that carry a credential
    model_query: tuple[str, ...] = ("model",)  # query parameters that name the model
    # Path params sent as query params when the client named no model: Azure's realtime socket
    # takes ``?deployment=`` where its REST paths have ``deployments/{d}/``.
    path_query: tuple[str, ...] = ()


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
    sdk_root: str = ""  # a path the provider's SDK puts before the version, already in the base
    layouts: tuple[Layout, ...] = ()  # client path shapes -> the canonical path (first match wins)
    openai_paths: tuple[str, ...] = ()  # path prefixes speaking OpenAI's wire format, not ``format``
    openai_stream_usage: bool = True  # those paths accept stream_options.include_usage
    realtime: RealtimeAPI | None = None  # None: no realtime WebSocket

    def credential_value(self, key: str) -> str:
        return f"{self.auth_scheme} {key}" if self.auth_scheme else key

    def add_default_headers(self, headers: list[tuple[str, str]]) -> None:
        """The provider's configured extra headers, where the client did not send its own."""
        if self.headers:
            present = {k.lower() for k, _ in headers}
            headers.extend((k, v) for k, v in self.headers if k not in present)


_LABEL = "[A-Za-z0-9][A-Za-z0-9-]{0,62}"
# The layouts the official AzureOpenAI client produces, most specific first. The canonical path is
# ``{resource}/deployments/{deployment}/{op}`` or, for routes without a deployment (the v1 API,
# files, batches), ``{resource}/{path below /openai}``.
_AZURE_LAYOUTS = tuple(
    Layout(re.compile(pattern), canonical)
    for pattern, canonical in (
        # AzureOpenAI(azure_endpoint=".../azure-openai/RES", azure_deployment=D) — or model=D
        (r"^(?P<r>[^/]+)/openai/deployments/(?P<d>[^/]+)/(?P<op>.+)$", "{r}/deployments/{d}/{op}"),
        # the v1 API (OpenAI(base_url=".../azure-openai/RES/openai/v1")) and deployment-less routes
        (r"^(?P<r>[^/]+)/openai/(?P<op>.+)$", "{r}/{op}"),
        # the canonical form itself, so a rewritten path rewrites to itself
        (r"^(?P<r>[^/]+)/deployments/(?P<d>[^/]+)/(?P<op>.+)$", "{r}/deployments/{d}/{op}"),
        # AzureOpenAI(base_url=".../azure-openai/RES/D"): the SDK appends deployments/{model};
        # the deployment the client was built with wins, as with a base_url naming one on Azure
        (r"^(?P<r>[^/]+)/(?P<d>[^/]+)/deployments/[^/]+/(?P<op>.+)$", "{r}/deployments/{d}/{op}"),
        # Cloudflare's layout: /azure-openai/{resource}/{deployment}/{op}
        (r"^(?P<r>[^/]+)/(?P<d>[^/]+)/(?P<op>.+)$", "{r}/deployments/{d}/{op}"),
    )
)

# host base with its version segment; header; scheme; usage format; OTel provider name
BUILTINS: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider(
            "openai",
            "https://api.openai.com/v1",
            "v1",
            otel_name="openai",
            stream_usage=True,
            realtime=RealtimeAPI("{base}", "realtime", key_subprotocol="openai-insecure-api-key."),
        ),
        Provider(
            "azure-openai",
            "https://{resource}.openai.azure.com/openai",
            auth_header="api-key",
            auth_scheme="",
            otel_name="azure.ai.openai",
            stream_usage=True,
            path_params=("resource",),
            layouts=_AZURE_LAYOUTS,
            # wss://{resource}.openai.azure.com/openai/realtime?api-version=…&deployment=…
            realtime=RealtimeAPI(
                "{origin}/openai",
                "realtime",
                key_query=("api-key",),
                model_query=("deployment", "model"),
                path_query=("deployment",),
            ),
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
        # The Inference Providers router: ``/huggingface/{model}`` is HF Inference (the successor of
        # api-inference.huggingface.co/models), ``/huggingface/v1/…`` its OpenAI-compatible root.
        Provider(
            "huggingface",
            "https://router.huggingface.co/hf-inference/models",
            "hf-inference/models",
            ("v1",),
            otel_name="huggingface",
            stream_usage=True,  # the router's chat completions take stream_options like OpenAI's
        ),
        Provider("replicate", "https://api.replicate.com/v1", "v1", format="replicate", otel_name="replicate"),
        Provider(
            "groq", "https://api.groq.com/openai/v1", "v1", otel_name="groq", stream_usage=True, sdk_root="openai"
        ),
        Provider("mistral", "https://api.mistral.ai/v1", "v1", otel_name="mistral_ai"),
        Provider(
            "cohere",
            "https://api.cohere.ai/v1",
            "v1",
            ("v2", "compatibility"),
            format="cohere",
            otel_name="cohere",
            openai_paths=("compatibility/",),
            openai_stream_usage=False,  # not documented for Cohere's compatibility API
        ),
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
            openai_paths=("openai/", "v1/openai/"),
            # The Live API sits beside the versioned REST base, at the host's root.
            realtime=RealtimeAPI(
                "{origin}",
                "ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent",
                key_query=("key", "access_token"),
                model_query=(),
            ),
        ),
        Provider("deepseek", "https://api.deepseek.com", otel_name="deepseek", stream_usage=True),
        Provider("perplexity-ai", "https://api.perplexity.ai", otel_name="perplexity"),
        Provider("cerebras", "https://api.cerebras.ai/v1", "v1", otel_name="cerebras", stream_usage=True),
        Provider("grok", "https://api.x.ai/v1", "v1", otel_name="x_ai", stream_usage=True),
        Provider("openrouter", "https://openrouter.ai/api/v1", "v1", otel_name="openrouter", stream_usage=True),
        # Ollama's OpenAI-compatible API (/v1/…) accepts stream_options.include_usage since 0.5
        Provider("ollama", "http://127.0.0.1:11434", format="ollama", otel_name="ollama", openai_paths=("v1/",)),
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


def canonical_path(provider: Provider, path: str) -> str:
    """``path`` as the gateway's canonical layout: SDK layouts rewritten, the SDK root dropped.

    A provider with layouts accepts only those shapes: a path none of them matches is returned
    unchanged and `join_url` refuses it.
    """
    for layout in provider.layouts:
        rewritten = layout.rewrite(path)
        if rewritten is not None:
            return rewritten
    root = provider.sdk_root
    if root and path.startswith(root + "/"):
        return path[len(root) + 1 :]
    return path


def join_url(provider: Provider, path: str) -> tuple[str, dict[str, str]]:
    """The upstream URL for ``path`` (already validated, no leading slash) and the path params.

    Raises ``ValueError`` with a user-facing message when required path params are missing or
    not valid host labels (they become part of the upstream host name for Azure), or when no
    endpoint path is left (``POST /openai`` would otherwise call the bare base URL).
    """
    params: dict[str, str] = {}
    base = provider.base_url
    canonical = canonical_path(provider, path)
    if provider.path_params:
        parts = canonical.split("/", len(provider.path_params))
        unknown_layout = provider.layouts and not any(layout.pattern.match(path) for layout in provider.layouts)
        if unknown_layout or len(parts) <= len(provider.path_params) or not parts[-1]:
            raise ValueError(f"expected /{provider.name}/{'/'.join('{' + p + '}' for p in provider.path_params)}/...")
        for pname, value in zip(provider.path_params, parts, strict=False):
            if not _HOST_LABEL.match(value):
                raise ValueError(f"invalid {pname} in path")
            params[pname] = value
            base = base.replace("{" + pname + "}", value)
        canonical = parts[-1]
        deployment = _DEPLOYMENT.match(canonical)
        if deployment:
            params["deployment"] = deployment.group(1)
    if "{" in base:
        raise ValueError(f"provider {provider.name} is not configured (base_url has placeholders)")
    path = canonical
    prefix = provider.version_prefix
    if prefix:
        if path == prefix or path.startswith(prefix + "/"):
            path = path[len(prefix) + 1 :]
        else:
            for alt in provider.alt_prefixes:
                if path.startswith(alt + "/") and len(path) > len(alt) + 1:
                    return base[: -len(prefix)] + path, params
    if not path:
        raise ValueError(f"no endpoint path after /{provider.name}")
    return f"{base}/{path}", params


_DEPLOYMENT = re.compile(r"^deployments/([A-Za-z0-9._-]+)/")


def realtime_endpoint(provider: Provider, path: str) -> tuple[str, dict[str, str]]:
    """The ws(s) URL of ``provider``'s realtime socket for ``path`` (validated, no leading slash).

    Returns the URL (without query) and the path params (Azure's resource, and the deployment
    when the path names one: Azure's realtime socket takes it as a query parameter). Raises
    ``ValueError`` with a user-facing message, like `join_url`.
    """
    realtime = provider.realtime
    if realtime is None:
        raise ValueError(f"provider {provider.name} has no realtime WebSocket")
    params: dict[str, str] = {}
    count = len(provider.path_params)
    if count:
        parts = canonical_path(provider, path).split("/", count)
        unknown_layout = len(parts) > count and not any(layout.pattern.match(path) for layout in provider.layouts)
        if len(parts) < count or not all(parts[:count]) or (provider.layouts and unknown_layout):
            raise ValueError(f"expected /{provider.name}/{'/'.join('{' + p + '}' for p in provider.path_params)}/...")
        for pname, value in zip(provider.path_params, parts, strict=False):
            if not _HOST_LABEL.match(value):
                raise ValueError(f"invalid {pname} in path")
            params[pname] = value
        path = parts[count] if len(parts) > count else ""
        deployment = _DEPLOYMENT.match(path)
        if deployment and "deployment" in realtime.path_query:
            params["deployment"] = deployment.group(1)
            path = path[deployment.end() :]
    else:
        path = canonical_path(provider, path)
    if realtime.url is not None:
        url = realtime.url  # configured: the one endpoint, whatever path the client named
    else:
        base = provider.base_url
        scheme, sep, rest = base.partition("://")
        root = realtime.root.replace("{base}", base).replace("{origin}", scheme + sep + rest.split("/", 1)[0])
        for pname, value in params.items():
            root = root.replace("{" + pname + "}", value)
        if "{" in root:
            raise ValueError(f"provider {provider.name} is not configured (base_url has placeholders)")
        path = path or realtime.path
        prefix = provider.version_prefix if realtime.root == "{base}" else ""  # only the REST base is versioned
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            path = path[len(prefix) + 1 :]
        url = f"{root}/{path}" if path else root
    if url.startswith("https://"):
        return "wss://" + url[8:], params
    if url.startswith("http://"):
        return "ws://" + url[7:], params
    return url, params


def relative_path(provider: Provider, path: str) -> str:
    """``path`` relative to the provider base: the same upstream URL always gives the same string.

    ``v1/chat/completions`` and ``chat/completions`` both reach ``{base}/chat/completions`` on a
    base ending in ``/v1``, and the groq SDK's ``openai/v1/…`` or an Azure SDK layout reach the
    same URL as the documented form, so caches key them alike.
    """
    path = canonical_path(provider, path)
    prefix = provider.version_prefix
    if prefix and (path == prefix or path.startswith(prefix + "/")):
        return path[len(prefix) + 1 :]
    return path


def dialect(provider: Provider, path: str) -> Provider:
    """The provider as it speaks at ``path``: the OpenAI-format twin on its ``openai_paths``.

    Ollama's ``/v1/…`` answers in OpenAI's shape (``usage.prompt_tokens``, SSE ending in
    ``[DONE]``), not the native NDJSON with ``eval_count``: reading it in the native format
    recorded no tokens and never saw a stream end.
    """
    if not provider.openai_paths:
        return provider
    rel = relative_path(provider, path)
    if rel.startswith(provider.openai_paths):
        return _openai_twin(provider)
    return provider


@functools.lru_cache(maxsize=64)
def _openai_twin(provider: Provider) -> Provider:
    return replace(provider, format="openai", stream_usage=provider.openai_stream_usage, openai_paths=())


def model_from(provider: Provider, path: str, params: dict[str, str], body: object) -> str | None:
    """The requested model, from the body or, for path-addressed providers, from the path."""
    rel = relative_path(provider, path)
    if provider.name == "huggingface" and rel and not rel.startswith("v1/"):
        # HF Inference names the model in the path; a body "model" there is a placeholder
        # (the huggingface_hub client sends "dummy" or "tgi" when the model is a URL).
        return _HF_TASK_SUFFIX.sub("", rel) or None
    if isinstance(body, dict):
        model = body.get("model")
        if isinstance(model, str) and model:
            return model
    if "deployment" in params:
        return params["deployment"]
    if provider.format == "gemini":
        _, sep, rest = rel.partition("models/")
        if sep:
            return rest.split(":", 1)[0] or None
    if provider.name == "workers-ai" and rel.startswith(("@cf/", "@hf/")):
        return rel
    if provider.name == "replicate":
        match = _REPLICATE_MODEL.match(rel)
        if match:
            return match.group(1)
    return None


_HF_TASK_SUFFIX = re.compile(r"/(?:v1/.*|pipeline/[^/]+)$")
_REPLICATE_MODEL = re.compile(r"^models/([^/]+/[^/]+)(?:/versions/[^/]+)?/predictions$")
