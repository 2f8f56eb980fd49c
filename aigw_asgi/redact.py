"""The one redaction helper: every layer that writes a log row, a span, an error or a log line
passes what it writes through here, so secrets have a single place to be recognised.

What counts as a secret:

- credential **headers**: ``authorization``, ``proxy-authorization``, ``cf-aig-authorization``,
  ``api-key`` (Azure), ``x-api-key`` (Anthropic), ``x-goog-api-key`` (Gemini), cookies, and the
  token entries of ``sec-websocket-protocol`` (``cf-aig-authorization.<token>``,
  ``xi-api-key.<key>``, ``fal-api-key.<key>``);
- credential **query parameters** (``key=`` for Gemini, ``api_key=``, ``token=``…) and
  ``user:password@`` in URLs;
- in **free text** (error messages, request/response bodies, exception strings): every *known*
  secret (gateway tokens, the admin token, configured provider keys, the credentials the client
  sent with this request) wherever it appears, plus the shapes secrets come in whatever their
  value: ``Bearer <x>``, ``key=<x>`` and JSON ``"api_key": "<x>"`` entries.

Known secrets matter because a pattern cannot recognise a bare key echoed by an upstream inside
an error body; patterns matter because a client's own provider key is not in any config.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from .config import Config
    from .context import RequestContext

__all__ = [
    "REDACTED",
    "RedactingFilter",
    "Redactor",
    "config_secrets",
    "is_secret_header",
    "redact_headers",
    "redact_labels",
    "redact_query",
    "redact_subprotocols",
    "redact_text",
    "redact_url",
    "request_secrets",
]

REDACTED = "[REDACTED]"

SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cf-aig-authorization",
        "api-key",
        "x-api-key",
        "x-goog-api-key",
        "cookie",
        "set-cookie",
    }
)
_SECRET_HEADERS_B = frozenset(h.encode() for h in SECRET_HEADERS)

SECRET_QUERY_PARAMS = frozenset(
    {"key", "api_key", "api-key", "apikey", "token", "access_token", "auth", "authorization", "secret", "password"}
)

# Subprotocol entries that carry a credential after the dot (Cloudflare, ElevenLabs, fal, OpenAI).
SECRET_SUBPROTOCOL_PREFIXES = ("cf-aig-authorization.", "xi-api-key.", "fal-api-key.", "openai-insecure-api-key.")

_MIN_SECRET_LEN = 6  # shorter "secrets" would redact ordinary words; config asks for >= 8 anyway

# The generic secret shapes. `_generic` runs each only when the text holds a substring that every
# match of it contains (a body holding none of them, most bodies, costs a few substring searches).
_BEARER = re.compile(r"\b(Bearer)\s+[A-Za-z0-9._~+/=:\-]+", re.IGNORECASE)  # "Bearer sk-…"
_BASIC = re.compile(r"\b(Basic)\s+[A-Za-z0-9+/]{12,}={0,2}")  # "Basic dXNlcjpwYXNz", not "basic usage"
# Query-string credentials inside URLs or text: ?key=…, &api_key=…
_QUERY = re.compile(r"([?&;](?:" + "|".join(re.escape(p) for p in sorted(SECRET_QUERY_PARAMS)) + r")=)[^&#\s\"'<>]*")
# JSON or header-dict entries: "x-api-key": "…", "apiKey": "…", 'Authorization': '…'
_ENTRY = re.compile(
    r"""(["'](?:[\w-]*api[-_]?key|authorization|cf-aig-authorization|proxy-authorization|"""
    r"""x-goog-api-key|access[-_]?token|secret|password)["']\s*:\s*["'])[^"']*""",
    re.IGNORECASE,
)
# Token entries of a Sec-WebSocket-Protocol list.
_SUBPROTOCOL = re.compile(r"((?:" + "|".join(re.escape(p) for p in SECRET_SUBPROTOCOL_PREFIXES) + r"))[^,\s\"']+")

# The non-ASCII characters re.IGNORECASE matches to an ASCII letter where ``str.lower`` does not
# give that letter (checked by a test against `re`): folded through this table, a text contains
# the lowercase word of every case-insensitive match.
_FOLD = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})


def _fold(text: str) -> str:
    return text.lower() if text.isascii() else text.translate(_FOLD).lower()


def _generic(text: str) -> str:
    """``text`` with the generic secret shapes replaced; each regex runs only behind its guard."""
    folded = _fold(text)
    if "bearer" in folded:
        text = _BEARER.sub(rf"\1 {REDACTED}", text)
        folded = _fold(text)
    if "Basic" in text:
        text = _BASIC.sub(rf"\1 {REDACTED}", text)
        folded = _fold(text)
    if "=" in text:
        text = _QUERY.sub(rf"\1{REDACTED}", text)
        folded = _fold(text)
    key = "key" in folded
    auth = "authorization" in folded
    # Every `_ENTRY` name contains one of these words. "access", not "token": the only token
    # name it knows is access_token, and usage counts put "tokens" in nearly every answer.
    if (
        (key and ('key"' in folded or "key'" in folded))
        or auth
        or ("access" in folded and ('token"' in folded or "token'" in folded))
        or "secret" in folded
        or "password" in folded
    ):
        text = _ENTRY.sub(rf"\1{REDACTED}", text)
        folded = _fold(text)
        key = "key" in folded
        auth = "authorization" in folded
    # The subprotocol prefixes: xi-api-key. fal-api-key. cf-aig-authorization.
    if (key and "api-key." in text) or (auth and "authorization." in text):
        text = _SUBPROTOCOL.sub(rf"\1{REDACTED}", text)
    return text


# Up to this many known secrets, each is looked for with ``in`` (a fast C search) and only the
# ones found go through a regex; beyond it, one compiled alternation scans the text instead.
_SCAN_MAX = 64

H = TypeVar("H", bytes, str)


def is_secret_header(name: str | bytes) -> bool:
    """Whether a header's value is a credential (name compared case-insensitively)."""
    if isinstance(name, bytes):
        return name.lower() in _SECRET_HEADERS_B
    return name.lower() in SECRET_HEADERS


def redact_subprotocols(value: H) -> H:
    """A ``Sec-WebSocket-Protocol`` value with the credential after each known prefix replaced."""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    parts = []
    for part in text.split(","):
        entry = part.strip()
        for prefix in SECRET_SUBPROTOCOL_PREFIXES:
            if entry.startswith(prefix):
                entry = prefix + REDACTED
                break
        parts.append(entry)
    out = ", ".join(parts)
    return out.encode("latin-1") if isinstance(value, bytes) else out  # type: ignore[return-value]


def _redact_header_value(name: str, value: H) -> H:
    if name in SECRET_HEADERS:
        return REDACTED.encode() if isinstance(value, bytes) else REDACTED  # type: ignore[return-value]
    if name == "sec-websocket-protocol":
        return redact_subprotocols(value)
    return value


def redact_headers(headers: Iterable[tuple[Any, Any]] | Mapping[Any, Any]) -> Any:
    """Headers with credential values replaced, in the shape they came in.

    Accepts raw ASGI headers (``[(b"name", b"value")]``), lists of ``(str, str)`` pairs and
    mappings (``dict``, httpx/Starlette ``Headers`` — returned as a plain ``dict``). Names are
    kept as given; matching ignores case.
    """
    if isinstance(headers, Mapping):
        return {k: _redact_header_value(_name(k), v) for k, v in headers.items()}
    return [(k, _redact_header_value(_name(k), v)) for k, v in headers]


def _name(key: str | bytes) -> str:
    return (key.decode("latin-1") if isinstance(key, bytes) else key).lower()


def redact_query(query: H) -> H:
    """A query string (``a=1&key=secret``) with credential parameters' values replaced."""
    text = query.decode("latin-1") if isinstance(query, bytes) else query
    if not text:
        return query
    parts = []
    changed = False
    for part in text.split("&"):
        name, sep, _ = part.partition("=")
        if sep and name.lower() in SECRET_QUERY_PARAMS:
            parts.append(f"{name}={REDACTED}")
            changed = True
        else:
            parts.append(part)
    if not changed:
        return query
    out = "&".join(parts)
    return out.encode("latin-1") if isinstance(query, bytes) else out  # type: ignore[return-value]


def redact_url(url: str) -> str:
    """A URL with ``user:password@`` and credential query parameters replaced."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    return urlunsplit((parts.scheme, netloc, parts.path, redact_query(parts.query), parts.fragment))


def _credential(value: str) -> str:
    """The secret part of a credential header value (``Bearer X`` -> ``X``)."""
    scheme, sep, rest = value.partition(" ")
    return rest.strip() if sep and scheme.lower() in ("bearer", "basic", "token") else value.strip()


class Redactor:
    """Free-text redaction with a fixed set of known secrets, compiled once.

    Build one per gateway from `config_secrets`; ``redactor(text, extra)`` replaces every known
    secret and every secret in ``extra`` (per request: the credentials the client sent, see
    `request_secrets`), then the generic secret shapes. Longest secrets are matched first so one
    secret that contains another is replaced whole.

    Cheap when there is nothing to redact (the common case, run for every logged body): known
    secrets are looked for with ``in`` and the generic patterns only run when the text holds a
    substring each of their matches needs. Nothing is compiled per call unless a secret is found.
    """

    __slots__ = ("_known", "_ordered", "_scan", "_secrets")

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets = frozenset(s for s in secrets if s and len(s) >= _MIN_SECRET_LEN)
        self._ordered = tuple(sorted(self._secrets, key=len, reverse=True))
        self._scan = len(self._ordered) <= _SCAN_MAX
        self._known: re.Pattern[str] | None = _alternation(self._secrets) if self._secrets else None

    @property
    def secrets(self) -> frozenset[str]:
        return self._secrets

    def with_secrets(self, extra: Iterable[str | None]) -> Redactor:
        """A redactor that also knows ``extra`` (self when nothing new is added).

        Compiles the union: for per-request secrets pass them to the call instead (``redactor(text, extra)``).
        """
        new = {s for s in extra if s and len(s) >= _MIN_SECRET_LEN} - self._secrets
        return Redactor(self._secrets | new) if new else self

    def __call__(self, text: str, extra: Iterable[str | None] = ()) -> str:
        return _generic(self._known_secrets(text, extra))

    def _known_secrets(self, text: str, extra: Iterable[str | None]) -> str:
        known = self._secrets
        found = [s for s in extra if s and len(s) >= _MIN_SECRET_LEN and s not in known and s in text]
        if not self._scan:
            # Many known secrets: one alternation over the text beats a search per secret.
            pattern = _alternation(known | frozenset(found)) if found else self._known
            return pattern.sub(REDACTED, text) if pattern is not None else text
        found += [s for s in self._ordered if s in text]
        if not found:
            return text
        if len(found) == 1:
            return text.replace(found[0], REDACTED)
        return _alternation(frozenset(found)).sub(REDACTED, text)

    def bytes(self, data: bytes) -> bytes:
        """`__call__` for bodies: decoded as UTF-8 (lossless for JSON), redacted, re-encoded."""
        text = data.decode("utf-8", "surrogateescape")
        out = self(text)
        return data if out == text else out.encode("utf-8", "surrogateescape")


@functools.lru_cache(maxsize=256)
def _alternation(secrets: frozenset[str]) -> re.Pattern[str]:
    """One regex matching any of ``secrets``, longest first (so a secret containing another wins)."""
    return re.compile("|".join(re.escape(s) for s in sorted(secrets, key=len, reverse=True)))


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every secret in ``secrets`` and every generic secret shape replaced.

    For repeated use build a `Redactor` once instead (this compiles the secrets on each call).
    """
    return Redactor(secrets)(text)


def config_secrets(config: Config) -> set[str]:
    """Every secret a config holds: plain gateway tokens, the admin token, provider keys, and the
    passwords inside storage URLs (``redis://:pw@…``, ``postgresql://user:pw@…``)."""
    out: set[str] = set()
    g = config.gateway
    if g.admin_token:
        out.add(g.admin_token)
    for tok in g.tokens:
        if tok.token:
            out.add(tok.token)
    for provider in config.providers.values():
        if provider.api_key:
            out.add(provider.api_key)
        for key in provider.api_keys:
            out.add(key.key)
    for url in (config.cache.storage, config.rate_limit.storage, config.logs.store):
        try:
            password = urlsplit(url.replace(",", "/", 1) if "+cluster" in url else url).password
        except ValueError:
            continue
        if password:
            out.add(password)
    return out


def request_secrets(ctx: RequestContext) -> set[str]:
    """The credentials one request carries: its gateway token and whatever provider key it sent.

    Telemetry passes these to its gateway-wide `Redactor` (``redactor(text, extra=...)``) so a
    client's own key echoed inside an upstream error body is caught too.
    """
    out: set[str] = set()
    if ctx.gateway_token:
        out.add(ctx.gateway_token)
    for key, value in ctx.headers:
        if key in _SECRET_HEADERS_B:
            out.add(_credential(value.decode("latin-1")))
        elif key == b"sec-websocket-protocol":
            for entry in value.decode("latin-1").split(","):
                entry = entry.strip()
                for prefix in SECRET_SUBPROTOCOL_PREFIXES:
                    if entry.startswith(prefix):
                        out.add(entry[len(prefix) :])
    return out


class RedactingFilter(logging.Filter):
    """A `logging.Filter` that redacts each record's rendered message (and drops its args).

    ``logging.getLogger("aigw_asgi").addFilter(RedactingFilter(redactor))``: exception texts
    and messages formatted from values can then never print a known secret.
    """

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor or Redactor()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redactor(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[1] is not None:
            # Render the traceback now, redacted, so handlers print our text instead.
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.redactor(text)
        return True


def redact_labels(ctx: RequestContext, redactor: Redactor) -> None:
    """Redact secrets from the client-chosen labels of ``ctx`` (and its universal steps), in place.

    ``cf-aig-event-id`` and ``cf-aig-metadata`` are free text the client picks and every sink
    stores (log rows, span attributes): a gateway token or provider key put there, by mistake or
    to read it back from the logs, is replaced like one inside a body. Run once the answer is sent
    (the event id header was echoed to the client who sent it).
    """
    # Most requests choose no label: the event id is then the gateway's own log id (a UUID it
    # generated) and there is no metadata, so there is nothing a client could have put a secret in.
    chosen = [c for c in (ctx, *ctx.children) if (c.event_id and c.event_id != c.log_id) or c.metadata]
    if not chosen:
        return
    extra = request_secrets(ctx)
    for c in chosen:
        if c.event_id and c.event_id != c.log_id:
            c.event_id = redactor(c.event_id, extra)
        metadata = c.metadata  # the parsed options' own dict: every later reader sees the result
        for key, value in metadata.items():
            if isinstance(value, str):
                metadata[key] = redactor(value, extra)
