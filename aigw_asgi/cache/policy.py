"""Cache policy as pure functions: what may be cached, under which key, for how long.

No I/O and no ASGI here (the hishel shape): the middleware asks these functions and does what
they say, and the tests drive them directly.

The key (SPEC §6) is a SHA-256 over the gateway id, the provider, the method, the upstream path
and query, a hash of the credential headers and the *canonical* JSON body (sorted keys, no
whitespace). Canonical, because a client that serialises ``{"model":…,"messages":…}`` in another
order asks the same question (LiteLLM #40128); the whole body, because any parameter — sampling,
``reasoning_effort``, a provider extra such as ``num_ctx`` — may change the answer, and leaving one
out serves wrong answers (LiteLLM #42400, #9844). A multipart upload is keyed by its parts (names,
filenames, types, contents), not its bytes: clients pick a random boundary per request, so the
same transcription sent twice never had the same bytes. ``cf-aig-metadata`` is a header and never part
of it. A ``cf-aig-cache-key`` replaces the body-derived part, but stays scoped by gateway,
provider, credential, gateway token and whether a stream was asked for, so a custom key can
neither reach another tenant's entries nor hand an SSE stream to a client that expects JSON.

Tenants: with a stored provider key, clients of different gateway tokens send the same (no)
credential, so the credential alone does not keep them apart. The name of the gateway token is
part of every custom key (tenant A choosing ``faq-1`` must never answer tenant B's ``faq-1``)
and, unless ``cache.share_across_tokens``, of every body-derived key too.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from .. import multipart
from ..headers import HOP_BY_HOP
from ..options import RequestOptions
from ..types import Headers

CUSTOM_KEY_DEFAULT_TTL = 300  # Cloudflare: a cf-aig-cache-key with no TTL anywhere lives 5 minutes
CACHEABLE_METHODS = frozenset({"POST", "GET"})
CREDENTIAL_HEADERS = frozenset({b"authorization", b"x-api-key", b"api-key", b"x-goog-api-key"})
STREAM_TYPES = (b"text/event-stream", b"application/x-ndjson")

# Never stored: hop-by-hop headers (RFC 9110 §7.6.1), what the replay recomputes, and anything
# that belongs to one client or one moment (cookies, the date, the gateway's own cf-aig-*).
_DROP_STORED = HOP_BY_HOP | {b"content-length", b"date", b"server", b"set-cookie", b"age"}


@dataclass(frozen=True, slots=True)
class Decision:
    """What the cache does for one request: ``ttl`` 0 means it does not apply (BYPASS)."""

    ttl: int
    read: bool  # look the key up (False with cf-aig-skip-cache: the answer is still stored)


BYPASS = Decision(ttl=0, read=False)

# A frozen dataclass costs ~0.35 µs to build (each field goes through object.__setattr__), on
# every cached request: the few (ttl, read) pairs a gateway sees are built once. Bounded, because
# a client may send any TTL in cf-aig-cache-ttl's range.
_decision = functools.lru_cache(maxsize=256)(Decision)


def split_path(path: str) -> tuple[str, str] | None:
    """``/openai/chat/completions`` -> ``("openai", "chat/completions")``; None without a provider.

    The cache runs before the router, so it reads the provider slug from the route path itself.
    """
    if not path.startswith("/"):
        return None
    slug, _, rest = path[1:].partition("/")
    if not slug:
        return None
    return slug, rest


def decide(method: str, options: RequestOptions, gateway_ttl: int) -> Decision:
    """Whether caching applies, and with which TTL (SPEC §3).

    TTL precedence: ``cf-aig-cache-ttl`` > the gateway TTL > 300 s when only a custom key asks.
    A request header opts in even when the gateway TTL is 0.
    """
    if method not in CACHEABLE_METHODS:
        return BYPASS
    ttl = options.cache_ttl or gateway_ttl or (CUSTOM_KEY_DEFAULT_TTL if options.cache_key else 0)
    if ttl <= 0:
        return BYPASS
    return _decision(ttl, not options.skip_cache)


def credential_hash(headers: Headers) -> bytes:
    """A digest of the credential headers present, so tenants with different keys never share.

    Only a digest enters the cache key: the key is logged, the credential must never be.
    """
    found = [b"%s\x00%s\x00" % (name, value) for name, value in headers if name in CREDENTIAL_HEADERS]
    return hashlib.sha256(b"".join(found)).digest() if found else _NO_CREDENTIAL


_NO_CREDENTIAL = hashlib.sha256(b"").digest()


def canonical_body(body: bytes, parsed: Any, content_type: bytes | None = None) -> bytes:
    """The body as the key sees it: canonical JSON when it is JSON, a digest of the parts when it
    is a multipart form, else the raw bytes.

    A one-byte tag keeps a JSON body and a byte body that happen to spell the same text apart.
    """
    if isinstance(parsed, dict | list):
        try:  # orjson: a tenth of json.dumps's time, and the same bytes for any body it parsed
            return b"j" + orjson.dumps(parsed, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # an integer past 64 bits in a body a layer built: the slow way
            return b"j" + json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if content_type is not None and content_type[:10].lower() == b"multipart/":
        parts = multipart.parse(body, content_type)
        if parts is not None:
            return b"m" + multipart.digest(parts)
    return b"b" + body


def stream_flag(parsed: Any) -> bytes:
    """How the request asked about streaming: ``"stream"`` true, false, or absent.

    Three states, not two, because Ollama streams when the field is absent; a custom key must not
    let ``stream: false`` replay an answer that was streamed.
    """
    if isinstance(parsed, dict) and "stream" in parsed:
        value = parsed["stream"]
        return b"s1" if value is True else b"s0" if value is False else b"s?"
    return b"s-"


def cache_key(
    *,
    gateway_id: str,
    provider: str,
    method: str,
    path: str,
    query: bytes,
    credential: bytes,
    body: bytes,
    stream: bytes,
    custom_key: str | None = None,
    token: str | None = None,
    share_across_tokens: bool = False,
) -> str:
    """The entry id, ``"{provider}:{sha256 hex}"``.

    ``token`` is the name of the gateway token that authenticated the request (None without
    authentication): always part of a custom key, part of a body-derived key unless
    ``share_across_tokens``. The provider prefix lets storages purge one provider without an
    index; the id is what logs show and what ``purge(key=…)`` takes. Fields are length-prefixed so
    no two different inputs can concatenate to the same bytes.
    """
    tenant = _tenant(token)
    if custom_key is not None:
        parts: tuple[bytes, ...] = (
            b"custom",
            gateway_id.encode(),
            provider.encode(),
            tenant,
            credential,
            stream,
            custom_key.encode(),
        )
    else:
        parts = (
            b"auto",
            gateway_id.encode(),
            provider.encode(),
            method.encode(),
            path.encode(),
            query,
            b"" if share_across_tokens else tenant,
            credential,
            stream,
            body,
        )
    # The same bytes as hashing each part in turn, in one call; the last part (the body, up to
    # the request cap) is hashed where it lies rather than copied into the joined head.
    *head, last = parts
    h = hashlib.sha256(_length_prefixed(head) + len(last).to_bytes(8, "big"))
    h.update(last)
    return f"{provider}:{h.hexdigest()}"


def exact_head(
    *, gateway_id: str, provider: str, method: str, path: str, query: bytes, credential: bytes, tenant: str | None
) -> bytes:
    """What an exact-bytes key hashes before the body: every part `cache_key` reads but the body
    and the stream flag (both follow from the body's bytes), length-prefixed as there.

    The middleware remembers an entry id under SHA-256(head + body) (`CacheMiddleware._key`);
    the ``exact`` tag keeps these digests apart from any other hash of the same parts.
    """
    parts = (
        b"exact",
        gateway_id.encode(),
        provider.encode(),
        method.encode(),
        path.encode(),
        query,
        _tenant(tenant),
        credential,
    )
    return _length_prefixed(parts)


def _tenant(token: str | None) -> bytes:
    """A key's gateway-token part: empty without authentication, tagged so "" is a name too."""
    return b"" if token is None else b"t" + token.encode()


def _length_prefixed(parts: Sequence[bytes]) -> bytes:
    """Each part after its length (8 bytes): no two different lists of parts join to the same bytes."""
    return b"".join([len(part).to_bytes(8, "big") + part for part in parts])


def is_stream(headers: Headers) -> bool:
    for name, value in headers:
        if name == b"content-type":
            return value.lower().startswith(STREAM_TYPES)
    return False


def cacheable_status(status: int) -> bool:
    """2xx only (a cached error would be served to everyone); 206 is a fragment, not an answer."""
    return 200 <= status < 300 and status != 206


def stored_headers(headers: Headers) -> Headers:
    """The response headers worth replaying: no hop-by-hop, no length, no ``cf-aig-*``."""
    return [(k, v) for k, v in headers if k not in _DROP_STORED and not k.startswith(b"cf-aig-")]
