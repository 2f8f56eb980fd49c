"""The one redaction helper: headers, URLs, query strings, free text, log records."""

from __future__ import annotations

import logging
import re

import pytest

from aigw_asgi.config import config_from_dict
from aigw_asgi.context import ensure_context
from aigw_asgi.redact import (
    REDACTED,
    RedactingFilter,
    Redactor,
    _fold as _fold,
    config_secrets,
    is_secret_header,
    redact_headers,
    redact_query,
    redact_subprotocols,
    redact_text,
    redact_url,
    request_secrets,
)

SECRET_HEADER_NAMES = [
    "Authorization",
    "authorization",
    "api-key",
    "x-api-key",
    "X-Goog-Api-Key",
    "cf-aig-authorization",
    "proxy-authorization",
    "cookie",
]


@pytest.mark.parametrize("name", SECRET_HEADER_NAMES)
def test_credential_headers_are_secret(name: str) -> None:
    assert is_secret_header(name) and is_secret_header(name.encode())


def test_ordinary_headers_are_not_secret() -> None:
    for name in ("content-type", "user-agent", "cf-aig-cache-ttl", "x-request-id", "anthropic-version"):
        assert not is_secret_header(name)


def test_raw_asgi_headers_keep_their_shape() -> None:
    headers = [
        (b"authorization", b"Bearer sk-live-123"),
        (b"x-api-key", b"anthropic-key-456"),
        (b"content-type", b"application/json"),
        (b"sec-websocket-protocol", b"chat, cf-aig-authorization.tok-secret-789"),
    ]
    assert redact_headers(headers) == [
        (b"authorization", REDACTED.encode()),
        (b"x-api-key", REDACTED.encode()),
        (b"content-type", b"application/json"),
        (b"sec-websocket-protocol", f"chat, cf-aig-authorization.{REDACTED}".encode()),
    ]


def test_str_pairs_and_mappings() -> None:
    assert redact_headers([("X-Goog-Api-Key", "AIza-secret")]) == [("X-Goog-Api-Key", REDACTED)]
    out = redact_headers({"Api-Key": "azure-secret", "Accept": "*/*", "cf-aig-authorization": "Bearer t0ken-xyz"})
    assert out == {"Api-Key": REDACTED, "Accept": "*/*", "cf-aig-authorization": REDACTED}


def test_query_strings() -> None:
    assert redact_query("alt=sse&key=AIza-secret") == f"alt=sse&key={REDACTED}"
    assert redact_query(b"api_key=abc123456&x=1") == f"api_key={REDACTED}&x=1".encode()
    assert redact_query("model=gpt&keyword=fine") == "model=gpt&keyword=fine"  # only whole names
    assert redact_query("") == ""


def test_urls() -> None:
    url = "https://generativelanguage.googleapis.com/v1beta/models/g:generateContent?key=AIza-secret&alt=sse"
    assert redact_url(url) == (
        f"https://generativelanguage.googleapis.com/v1beta/models/g:generateContent?key={REDACTED}&alt=sse"
    )
    assert redact_url("redis://user:hunter2@cache:6379/0") == f"redis://{REDACTED}@cache:6379/0"
    assert redact_url("http://example.com/a?b=1") == "http://example.com/a?b=1"


def test_subprotocol_entries() -> None:
    assert redact_subprotocols("xi-api-key.abc, fal-api-key.def,json") == (
        f"xi-api-key.{REDACTED}, fal-api-key.{REDACTED}, json"
    )


def test_known_secrets_anywhere_in_text() -> None:
    text = 'upstream said: {"error": "invalid key sk-abcdef123 for org"} (key sk-abcdef123)'
    out = redact_text(text, {"sk-abcdef123"})
    assert "sk-abcdef123" not in out and out.count(REDACTED) == 2


def test_longest_known_secret_wins() -> None:
    out = Redactor(["secret-token", "secret-token-extended"])("x secret-token-extended y")
    assert out == f"x {REDACTED} y"


def test_generic_shapes_without_known_secrets() -> None:
    redactor = Redactor()
    assert redactor("Authorization: Bearer sk-proj-XYZ.abc") == f"Authorization: Bearer {REDACTED}"
    assert redactor("GET /v1/models?key=AIzaSy123&alt=sse") == f"GET /v1/models?key={REDACTED}&alt=sse"
    body = '{"headers": {"Authorization": "Bearer abc", "x-api-key": "k-1", "apiKey": "k-2"}, "max_tokens": 5}'
    out = redactor(body)
    for secret in ("abc", "k-1", "k-2"):
        assert f'"{secret}"' not in out
    assert '"max_tokens": 5' in out
    assert redactor("cf-aig-authorization.tok123456") == f"cf-aig-authorization.{REDACTED}"
    # access tokens, beside usage counts that say "tokens" (the guard looks for "access")
    usage = '"usage": {"prompt_tokens": 5}'
    assert redactor(f'{{"Access_Token": "ya29.x", {usage}}}') == f'{{"Access_Token": "{REDACTED}", {usage}}}'
    assert redactor(f"{{'access-token': 'ya29.y', {usage}}}") == f"{{'access-token': '{REDACTED}', {usage}}}"
    assert redactor(f'{{"token": "not-a-named-secret", {usage}}}') == f'{{"token": "not-a-named-secret", {usage}}}'


def test_basic_credentials() -> None:
    assert Redactor()("Authorization: Basic dXNlcjpodW50ZXIyMTIz") == f"Authorization: Basic {REDACTED}"
    assert Redactor()("Basic usage of the API") == "Basic usage of the API"


def test_ordinary_text_is_untouched() -> None:
    text = "Token limit exceeded: prompt_tokens=10, max_tokens=5 (the key was fine)"
    assert Redactor(["sk-not-here-123"])(text) == text


def test_short_secrets_are_ignored() -> None:
    # A 1-character "secret" would shred every message; config requires >= 8 characters anyway.
    assert Redactor(["a"])("a banana") == "a banana"


def test_with_secrets_extends_and_reuses() -> None:
    base = Redactor(["gateway-token-1"])
    assert base.with_secrets([None, "", "gateway-token-1"]) is base
    extended = base.with_secrets(["client-key-999"])
    assert extended("gateway-token-1 client-key-999") == f"{REDACTED} {REDACTED}"
    assert base("client-key-999") == "client-key-999"


def test_per_call_secrets_need_no_new_redactor() -> None:
    base = Redactor(["gateway-token-1"])
    text = "gateway-token-1 client-key-999 client-key-999-long"
    out = base(text, extra={"client-key-999", "client-key-999-long", None, "short"})
    assert out == f"{REDACTED} {REDACTED} {REDACTED}"
    assert base("client-key-999") == "client-key-999"


def test_many_known_secrets_use_one_alternation() -> None:
    redactor = Redactor([f"filler-secret-{i:04d}" for i in range(200)])
    assert redactor("a filler-secret-0123 b", extra=["client-key-999"]) == f"a {REDACTED} b"
    assert redactor("client-key-999 filler-secret-0007", extra=["client-key-999"]) == f"{REDACTED} {REDACTED}"


def test_case_insensitive_shapes_in_non_ascii_text() -> None:
    # re.IGNORECASE matches "ſ" (long s) as "s"; the fast ASCII precheck must not skip such text.
    assert Redactor()('{"ſecret": "hunter2", "note": "é"}') == f'{{"ſecret": "{REDACTED}", "note": "é"}}'
    assert Redactor()("BEARER abc.def é") == f"BEARER {REDACTED} é"


def test_fold_table_covers_every_case_insensitive_ascii_match() -> None:
    # The guards look for lowercase words in `_fold(text)`: every character re.IGNORECASE matches
    # to an ASCII letter must fold to that letter, or a guard could skip a real secret.
    letter = re.compile("[a-z]", re.IGNORECASE)
    for code in range(0x110000):
        char = chr(code)
        if letter.fullmatch(char):
            assert re.fullmatch(re.escape(_fold(char)), char, re.IGNORECASE), hex(code)
            assert _fold(char).isascii(), hex(code)


def test_bytes_bodies() -> None:
    redactor = Redactor(["sk-body-secret"])
    assert redactor.bytes(b'{"k":"sk-body-secret"}') == b'{"k":"[REDACTED]"}'
    clean = b'{"ok":true}'
    assert redactor.bytes(clean) is clean
    assert redactor.bytes(b"\xff\xfe sk-body-secret") == b"\xff\xfe [REDACTED]"


def test_config_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIGW_TEST_TOKEN", "plain-gateway-token")
    config = config_from_dict(
        {
            "gateway": {
                "authentication": True,
                "tokens": [{"name": "app", "token": "env:AIGW_TEST_TOKEN"}, {"name": "ci", "sha256": "a" * 64}],
                "admin_token": "admin-token-123",
            },
            "providers": {
                "openai": {"api_key": "sk-openai-provider"},
                "anthropic": {"api_keys": [{"alias": "a", "key": "sk-ant-1"}, {"alias": "b", "key": "sk-ant-2"}]},
            },
            "cache": {"storage": "redis+cluster://:cluster-pw@10.0.0.1:7000,10.0.0.2:7000"},
            "rate_limit": {"storage": "redis://default:redis-pw@127.0.0.1:6379/0"},
            "logs": {"store": "postgresql://aigw:pg-pw@db.internal:5432/aigw"},
        }
    )
    assert config_secrets(config) == {
        "plain-gateway-token",
        "admin-token-123",
        "sk-openai-provider",
        "sk-ant-1",
        "sk-ant-2",
        "cluster-pw",
        "redis-pw",
        "pg-pw",
    }


def test_request_secrets() -> None:
    scope = {
        "type": "websocket",
        "path": "/",
        "headers": [
            (b"authorization", b"Bearer sk-client-key"),
            (b"x-goog-api-key", b"AIza-client"),
            (b"sec-websocket-protocol", b"json, cf-aig-authorization.gw-token-1"),
            (b"content-type", b"application/json"),
        ],
    }
    ctx = ensure_context(scope)
    ctx.gateway_token = "gw-token-1"
    assert request_secrets(ctx) == {"sk-client-key", "AIza-client", "gw-token-1"}


def test_logging_filter_redacts_messages_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("aigw_asgi.test_redact")
    log_filter = RedactingFilter(Redactor(["sk-logged-secret"]))
    logger.addFilter(log_filter)
    try:
        with caplog.at_level(logging.INFO, logger=logger.name):
            logger.info("calling upstream with %s", "sk-logged-secret")
            try:
                raise RuntimeError("boom: sk-logged-secret")
            except RuntimeError:
                logger.exception("failed")
    finally:
        logger.removeFilter(log_filter)
    assert caplog.records[0].getMessage() == f"calling upstream with {REDACTED}"
    assert "sk-logged-secret" not in caplog.text
    assert "RuntimeError: boom: [REDACTED]" in caplog.text
