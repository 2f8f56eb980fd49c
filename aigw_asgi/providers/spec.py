"""What a provider is, as data: where it lives, how it authenticates, which wire format it speaks.

Value objects only; the built-in providers are in builtins.py, the config -> registry step in
registry.py, and path/URL logic over these objects in urls.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


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
