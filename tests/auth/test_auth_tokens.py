"""Pure parts of authentication: the token table, credential lookup, loopback, the admin rule."""

from __future__ import annotations

import hashlib

import pytest

from aigw_asgi.auth import AdminGuard, TokenTable, _find_credential, bearer_token, hash_token, is_loopback
from aigw_asgi.config import GatewayConfig, TokenConfig

PLAIN = "plain-token-0001"
HASHED = "hashed-token-0002"


def table() -> TokenTable:
    return TokenTable([TokenConfig(name="app", token=PLAIN), TokenConfig(name="ci", sha256=hash_token(HASHED))])


def test_plain_and_hashed_tokens_match_by_name() -> None:
    tokens = table()
    assert len(tokens) == 2
    assert tokens.match(PLAIN.encode()) == "app"
    assert tokens.match(HASHED.encode()) == "ci"


def test_uppercase_hex_digests_work() -> None:
    tokens = TokenTable([TokenConfig(name="ci", sha256=hash_token(HASHED).upper())])
    assert tokens.match(HASHED.encode()) == "ci"


@pytest.mark.parametrize("token", [b"", b"plain-token-000", b"plain-token-00011", b"PLAIN-TOKEN-0001", b"x" * 10_000])
def test_other_tokens_do_not_match(token: bytes) -> None:
    assert table().match(token) is None


def test_a_digest_is_not_a_token() -> None:
    # Presenting the configured digest itself must not authenticate.
    assert table().match(hash_token(HASHED).encode()) is None


def test_hash_token_is_sha256_hex() -> None:
    assert hash_token("abc") == hashlib.sha256(b"abc").hexdigest() == hash_token(b"abc")


def test_bearer_token() -> None:
    assert bearer_token(b"Bearer abc") == b"abc"
    assert bearer_token(b"bearer  abc ") == b"abc"
    for value in (None, b"", b"Bearer", b"Bearer ", b"Bearer    ", b"Basic abc", b"abc"):
        assert bearer_token(value) is None


def http(*headers: tuple[bytes, bytes]) -> dict:
    return {"type": "http", "headers": list(headers)}


def ws(*headers: tuple[bytes, bytes], subprotocols: list[str] | None = None) -> dict:
    return {"type": "websocket", "headers": list(headers), "subprotocols": subprotocols or []}


def test_cf_aig_authorization_is_the_main_path() -> None:
    scope = http((b"authorization", b"Bearer sk-provider"), (b"cf-aig-authorization", b"Bearer gw"))
    assert _find_credential(scope) == (b"gw", "header")


def test_malformed_cf_header_is_not_replaced_by_another_source() -> None:
    # One candidate per request: a bad cf-aig-authorization does not fall back to Authorization.
    scope = http((b"cf-aig-authorization", b"gw"), (b"authorization", b"Bearer gw"))
    assert _find_credential(scope) == (None, "header")


def test_provider_slot_only_without_cf_header() -> None:
    assert _find_credential(http((b"authorization", b"Bearer gw-token"))) == (b"gw-token", "authorization")
    # Only the exact form the router strips upstream counts, so an accepted token can never be forwarded.
    for value in (b"bearer gw-token", b"Bearer  gw-token", b"Bearer gw-token ", "Bearer gw-tökén".encode()):
        assert _find_credential(http((b"authorization", value))) == (None, None)


def test_websocket_subprotocol_entry() -> None:
    scope = ws(subprotocols=["json", "cf-aig-authorization.gw-token"])
    assert _find_credential(scope) == (b"gw-token", "subprotocol")
    # The header wins over the subprotocol entry.
    scope = ws((b"cf-aig-authorization", b"Bearer other"), subprotocols=["cf-aig-authorization.gw-token"])
    assert _find_credential(scope) == (b"other", "header")
    # HTTP scopes have no subprotocols.
    assert _find_credential(http()) == (None, None)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("192.168.1.2", False),
        ("::ffff:10.0.0.1", False),
        ("localhost", False),  # scope["client"] holds addresses; a name is not proof of anything
        ("", False),
        (None, False),
    ],
)
def test_is_loopback(host: str | None, expected: bool) -> None:
    assert is_loopback(host) is expected


async def _noop(scope, receive, send) -> None:  # pragma: no cover - never called by allowed()
    pass


def admin_scope(client: str | None, *headers: tuple[bytes, bytes]) -> dict:
    return {"type": "http", "client": (client, 5000) if client else None, "headers": list(headers)}


def test_admin_without_token_is_loopback_only() -> None:
    guard = AdminGuard(_noop, GatewayConfig())
    assert guard.allowed(admin_scope("127.0.0.1"))
    assert guard.allowed(admin_scope("::1"))
    assert not guard.allowed(admin_scope("203.0.113.9"))
    assert not guard.allowed(admin_scope(None))
    # Through a reverse proxy on the same host every client looks local: forwarded requests do not pass.
    assert not guard.allowed(admin_scope("127.0.0.1", (b"x-forwarded-for", b"203.0.113.9")))
    assert not guard.allowed(admin_scope("127.0.0.1", (b"forwarded", b"for=203.0.113.9")))
    custom = AdminGuard(_noop, GatewayConfig(trusted_proxy_header="X-Origin-Client"))
    assert not custom.allowed(admin_scope("127.0.0.1", (b"x-origin-client", b"203.0.113.9")))


@pytest.mark.parametrize(
    "name",
    [b"true-client-ip", b"x-client-ip", b"cf-connecting-ip", b"fastly-client-ip", b"x-forwarded-host", b"via"],
)
def test_any_forwarding_header_makes_a_loopback_peer_remote(name: bytes) -> None:
    """Issue 11: a proxy on the same host that sets only ``True-Client-IP`` opened the admin API."""
    guard = AdminGuard(_noop, GatewayConfig())
    assert not guard.allowed(admin_scope("127.0.0.1", (name, b"203.0.113.9")))


def test_admin_token_in_either_header_from_anywhere() -> None:
    guard = AdminGuard(_noop, GatewayConfig(admin_token="admin-secret-1"))
    assert guard.allowed(admin_scope("203.0.113.9", (b"authorization", b"Bearer admin-secret-1")))
    assert guard.allowed(admin_scope("203.0.113.9", (b"cf-aig-authorization", b"Bearer admin-secret-1")))
    # With a token set, loopback alone is not enough, and wrong tokens fail.
    assert not guard.allowed(admin_scope("127.0.0.1"))
    assert not guard.allowed(admin_scope("127.0.0.1", (b"authorization", b"Bearer admin-secret-2")))
    assert not guard.allowed(admin_scope("127.0.0.1", (b"authorization", b"admin-secret-1")))


def test_gateway_tokens_do_not_open_the_admin_api() -> None:
    config = GatewayConfig(authentication=True, tokens=[TokenConfig(name="app", token=PLAIN)], admin_token="adm-12345")
    guard = AdminGuard(_noop, config)
    assert not guard.allowed(admin_scope("203.0.113.9", (b"cf-aig-authorization", f"Bearer {PLAIN}".encode())))
