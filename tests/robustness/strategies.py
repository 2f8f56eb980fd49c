"""Hypothesis strategies for what a hostile or confused client can put on the wire."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from tests.robustness.harness import BEHAVIOURS, TOKEN

PROVIDERS = ("openai", "anthropic", "azure-openai", "workers-ai", "google-ai-studio", "groq", "ollama", "compat",
             "dynamic", "custom-nope", "not-a-provider", "admin", "")  # fmt: skip
ENDPOINTS = ("chat/completions", "v1/chat/completions", "messages", "v1/messages", "models", "embeddings",
             "r/chat/completions", "chat/completions/", "")  # fmt: skip

# Path segments on the wire (percent-encoded ASCII). uvicorn hands the app ``path`` decoded.
_TRICKS = ("..", ".", "%2e%2e", "%2E", "%2F", "%2f..%2f", "%5c", "%00", "%0a", "%ZZ", "%", "%e2%80%ae",
           "%ff%fe", "https:", "evil.com", "%23", "?", "~", "%20", "a%2Fb")  # fmt: skip
_segment = st.one_of(
    st.sampled_from(_TRICKS),
    st.sampled_from(ENDPOINTS),
    st.text(max_size=12).map(lambda s: quote(s, safe="")),  # unicode, control chars, anything
    st.text(alphabet="abcxyz-_.~:@!$&'()*+,;=", max_size=8),
)


@st.composite
def raw_paths(draw: st.DrawFn) -> bytes:
    """``/{provider}/{segments…}`` with tricks, doubled slashes and trailing slashes."""
    provider = draw(
        st.sampled_from(PROVIDERS[:6])
        | st.sampled_from(PROVIDERS)
        | st.text(max_size=8).map(lambda s: quote(s, safe=""))
    )
    segments = draw(st.lists(_segment, max_size=5))
    sep = draw(st.sampled_from(["/", "/", "/", "//"]))
    path = "/" + provider + ("/" if segments else "") + sep.join(segments)
    if draw(st.booleans()) and draw(st.booleans()):
        path = draw(st.sampled_from(["//", "/./", "/../"])) + path.lstrip("/")
    return path.encode("ascii")


methods = st.sampled_from(["GET", "POST", "POST", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]) | st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=8
)

# Header values a server hands the app: latin-1, no CR/LF/NUL (the HTTP parser rejects those).
latin1_text = st.text(
    alphabet=st.characters(min_codepoint=1, max_codepoint=255, exclude_characters="\r\n"), max_size=40
)
_token_chars = "abcdefghijklmnopqrstuvwxyz0123456789-_.!#$%&'*+^`|~"

CF_HEADERS = ("cf-aig-cache-ttl", "cf-aig-skip-cache", "cf-aig-cache-key", "cf-aig-metadata", "cf-aig-collect-log",
              "cf-aig-collect-log-payload", "cf-aig-custom-cost", "cf-aig-request-timeout", "cf-aig-max-attempts",
              "cf-aig-retry-delay", "cf-aig-backoff", "cf-aig-event-id", "cf-aig-byok-alias", "cf-aig-otel-trace-id",
              "cf-aig-step", "cf-aig-unknown")  # fmt: skip
OTHER_HEADERS = ("content-type", "content-length", "transfer-encoding", "authorization", "x-api-key", "host",
                 "connection", "accept-encoding", "user-agent", "traceparent", "x-forwarded-for", "expect",
                 "anthropic-version", "cookie")  # fmt: skip

_json_scalar = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | latin1_text
json_values = st.recursive(
    _json_scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(latin1_text, inner, max_size=4),
    max_leaves=12,
)


def _int_over(text: str, limit: int) -> bool:
    try:
        return int(text) > limit
    except ValueError:
        return False


def _cf_value(name: str) -> st.SearchStrategy[str]:
    """Values near the header's grammar (so parsers get past the first check) and plain junk."""
    plausible: dict[str, st.SearchStrategy[Any]] = {
        "cf-aig-cache-ttl": st.integers(-10, 3_000_000).map(str),
        "cf-aig-skip-cache": st.sampled_from(["true", "false", "TRUE", " true ", "1", "yes"]),
        "cf-aig-metadata": json_values.map(lambda v: json.dumps(v, ensure_ascii=False)),
        "cf-aig-custom-cost": st.dictionaries(
            st.sampled_from(["per_token_in", "per_token_out", "total_cost", "x"]), _json_scalar, max_size=3
        ).map(lambda v: json.dumps(v, ensure_ascii=False)),
        "cf-aig-request-timeout": st.integers(-5, 10**12).map(str),
        "cf-aig-max-attempts": st.integers(-1, 9).map(str),
        # Small delays only: a valid 5000 ms backoff would just make the suite slow.
        "cf-aig-retry-delay": st.integers(-3, 20).map(str),
        "cf-aig-backoff": st.sampled_from(["constant", "linear", "exponential", "EXPONENTIAL", "fast"]),
        "cf-aig-otel-trace-id": st.text(alphabet="0123456789abcdefg", min_size=30, max_size=34),
        "cf-aig-cache-key": st.text(alphabet=_token_chars, min_size=1, max_size=20),
        "cf-aig-event-id": st.text(alphabet=_token_chars, max_size=20),
        "cf-aig-collect-log": st.sampled_from(["true", "false", "nope"]),
        "cf-aig-collect-log-payload": st.sampled_from(["true", "false", "nope"]),
        "cf-aig-byok-alias": st.sampled_from(["default", "nope", ""]),
    }
    junk = latin1_text.filter(lambda v: not (name == "cf-aig-retry-delay" and _int_over(v, 20)))
    if name not in plausible:
        return junk
    return st.one_of(plausible[name], plausible[name], plausible[name], junk)  # mostly past the first check


@st.composite
def header_lists(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = []
    auth = draw(st.sampled_from(["ok"] * 12 + ["missing", "wrong", "scheme", "twice"]))
    if auth == "ok":
        headers.append((b"cf-aig-authorization", f"Bearer {TOKEN}".encode()))
    elif auth == "wrong":
        headers.append((b"cf-aig-authorization", ("Bearer " + draw(latin1_text)).encode("latin-1")))
    elif auth == "scheme":  # the right token in a wrong shape must not be echoed back either
        headers.append((b"cf-aig-authorization", draw(st.sampled_from([TOKEN, f"Basic {TOKEN}", f"bearer  {TOKEN}",
                                                                        f"Bearer {TOKEN}x"])).encode()))  # fmt: skip
    elif auth == "twice":
        headers += [(b"cf-aig-authorization", f"Bearer {TOKEN}".encode())] * 2
    for name in draw(st.lists(st.sampled_from(CF_HEADERS), max_size=3)):
        headers.append((name.encode(), draw(_cf_value(name)).encode("latin-1")))
    for name in draw(st.lists(st.sampled_from(OTHER_HEADERS), max_size=3)):
        headers.append((name.encode(), draw(latin1_text).encode("latin-1")))
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.text(alphabet=_token_chars, min_size=1, max_size=12))
        headers.append((name.encode(), draw(latin1_text).encode("latin-1")))
    return draw(st.permutations(headers))


def _chat(model: Any, stream: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream, "max_tokens": 5}


bodies = st.one_of(
    st.just(b""),
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
    st.builds(
        _chat,
        st.sampled_from(["gpt-fake-1", "openai/gpt-fake-1", "dynamic/r", "dynamic/none", "", "/"]) | json_values,
        st.booleans() | json_values,
    ).map(lambda v: json.dumps(v).encode()),
    st.integers(60_000, 70_000).map(lambda n: b'{"model":"gpt-fake-1","pad":"' + b"x" * n + b'"}'),  # ~max bytes
    st.sampled_from([b"{", b"[", b'{"model":', b"\xff\xfe{}", b"null", b"1e999999", b'"\\ud800"', b"[" * 5000]),
)
behaviours = st.sampled_from(BEHAVIOURS)
queries = st.text(max_size=30).map(lambda s: quote(s, safe="=&").encode("ascii"))
