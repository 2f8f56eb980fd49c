"""Cache policy, pure: keys, TTL decisions, what may be stored (no ASGI, no I/O)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from aigw_asgi.cache import policy
from aigw_asgi.errors import InvalidRequest
from aigw_asgi.options import RequestOptions, parse_options

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2}


def key_for(body: Any = BODY, **overrides: Any) -> str:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    parsed = None if isinstance(body, bytes) else json.loads(raw)
    args: dict[str, Any] = {
        "gateway_id": "gw",
        "provider": "openai",
        "method": "POST",
        "path": "chat/completions",
        "query": b"",
        "credential": policy.credential_hash([(b"authorization", b"Bearer sk-a")]),
        "body": policy.canonical_body(raw, parsed),
        "stream": policy.stream_flag(parsed),
        "custom_key": None,
    }
    args.update(overrides)
    return policy.cache_key(**args)


def test_key_is_provider_prefixed_sha256() -> None:
    provider, _, digest = key_for().partition(":")
    assert provider == "openai" and re.fullmatch(r"[0-9a-f]{64}", digest)


def test_json_key_order_and_whitespace_do_not_change_the_key() -> None:
    reordered = json.dumps(dict(reversed(list(BODY.items()))), indent=2).encode()
    assert key_for(reordered) != key_for()  # as raw bytes they differ...
    parsed = json.loads(reordered)
    assert key_for(body=parsed) == key_for()  # ...canonically they are the same question
    nested = {**BODY, "messages": [{"content": "hi", "role": "user"}]}
    assert key_for(nested) == key_for()


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.3},
        {"user": "alice"},
        {"reasoning_effort": "high"},
        {"num_ctx": 4096},  # a provider extra (LiteLLM #42400)
        {"model": "gpt-4o"},
        {"stream": True},
    ],
)
def test_any_parameter_change_changes_the_key(change: dict[str, Any]) -> None:
    assert key_for({**BODY, **change}) != key_for()


@pytest.mark.parametrize(
    "override",
    [
        {"gateway_id": "other"},
        {"provider": "groq"},
        {"method": "GET"},
        {"path": "embeddings"},
        {"query": b"api-version=1"},
        {"credential": policy.credential_hash([(b"authorization", b"Bearer sk-b")])},
        {"credential": policy.credential_hash([])},
    ],
)
def test_request_identity_is_in_the_key(override: dict[str, Any]) -> None:
    assert key_for(**override) != key_for()


def test_non_json_body_is_keyed_by_bytes_and_never_equals_json() -> None:
    assert key_for(b"abc") == key_for(b"abc")
    assert key_for(b"abc") != key_for(b"abd")
    assert policy.canonical_body(b'"x"', None) != policy.canonical_body(b'"x"', ["x"])


def test_custom_key_replaces_the_body_but_keeps_tenant_and_stream_apart() -> None:
    a = key_for(custom_key="k1")
    assert key_for({**BODY, "temperature": 1.0}, custom_key="k1") == a  # body no longer matters
    assert key_for(custom_key="k2") != a
    assert key_for({**BODY, "stream": True}, custom_key="k1") != a  # stream vs not never shares
    assert key_for(custom_key="k1", credential=policy.credential_hash([(b"x-api-key", b"z")])) != a
    assert key_for(custom_key="k1", provider="anthropic").startswith("anthropic:")


def test_stream_flag_has_three_states() -> None:
    flags = {policy.stream_flag(b) for b in ({"stream": True}, {"stream": False}, {}, None, {"stream": "yes"})}
    assert len(flags) == 4  # absent (Ollama streams by default) is not false


def test_credential_hash_covers_every_credential_header_and_nothing_else() -> None:
    base = policy.credential_hash([(b"content-type", b"application/json")])
    assert base == policy.credential_hash([])
    seen = {base}
    for name in policy.CREDENTIAL_HEADERS:
        digest = policy.credential_hash([(name, b"secret")])
        assert digest not in seen
        seen.add(digest)
    # cf-aig-metadata never enters the key
    assert policy.credential_hash([(b"cf-aig-metadata", b'{"u":1}')]) == base


def test_metadata_header_is_not_part_of_the_key() -> None:
    # The key takes only body, path and credentials: metadata has no way in. Prove the options
    # that do change it are only the cache key itself.
    with_meta = parse_options([(b"cf-aig-metadata", b'{"user":"a"}')])
    assert with_meta.cache_key is None


def test_split_path() -> None:
    assert policy.split_path("/openai/chat/completions") == ("openai", "chat/completions")
    assert policy.split_path("/workers-ai/@cf/meta/llama") == ("workers-ai", "@cf/meta/llama")
    assert policy.split_path("/openai") == ("openai", "")
    assert policy.split_path("/") is None
    assert policy.split_path("") is None


@pytest.mark.parametrize(
    ("method", "options", "gateway_ttl", "expected"),
    [
        ("POST", RequestOptions(), 0, policy.BYPASS),
        ("POST", RequestOptions(), 600, policy.Decision(600, True)),
        ("POST", RequestOptions(cache_ttl=120), 0, policy.Decision(120, True)),  # header opts in
        ("POST", RequestOptions(cache_ttl=120), 600, policy.Decision(120, True)),  # header wins
        ("POST", RequestOptions(cache_key="k"), 0, policy.Decision(300, True)),  # custom key: 300 s
        ("POST", RequestOptions(cache_key="k"), 900, policy.Decision(900, True)),
        ("POST", RequestOptions(cache_key="k", cache_ttl=60), 900, policy.Decision(60, True)),
        ("POST", RequestOptions(skip_cache=True), 600, policy.Decision(600, False)),  # still stored
        ("GET", RequestOptions(), 600, policy.Decision(600, True)),
        ("DELETE", RequestOptions(), 600, policy.BYPASS),
        ("PUT", RequestOptions(cache_ttl=120), 0, policy.BYPASS),
    ],
)
def test_decide(method: str, options: RequestOptions, gateway_ttl: int, expected: policy.Decision) -> None:
    assert policy.decide(method, options, gateway_ttl) == expected


def test_decisions_are_shared_and_their_memo_stays_bounded_whatever_ttls_clients_send() -> None:
    """A gateway's usual decision is built once; a client sending every TTL in range grows nothing."""
    assert policy.decide("POST", RequestOptions(), 600) is policy.decide("POST", RequestOptions(), 600)
    for ttl in range(60, 60 + 5000):
        assert policy.decide("POST", RequestOptions(cache_ttl=ttl), 0) == policy.Decision(ttl, True)
    assert policy._decision.cache_info().currsize <= 256


@pytest.mark.parametrize(
    "header",
    [
        (b"cf-aig-cache-ttl", b"59"),
        (b"cf-aig-cache-ttl", b"2592001"),
        (b"cf-aig-cache-ttl", b"5 minutes"),
        (b"cf-aig-skip-cache", b"yes"),
        (b"cf-aig-cache-key", b""),
    ],
)
def test_invalid_cache_headers_are_400_2004(header: tuple[bytes, bytes]) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_options([header])
    assert info.value.code == 2004 and header[0].decode() in info.value.message


def test_cacheable_status() -> None:
    assert [s for s in (199, 200, 201, 204, 206, 299, 301, 304, 400, 429, 500) if policy.cacheable_status(s)] == [
        200,
        201,
        204,
        299,
    ]


def test_stored_headers_drop_hop_by_hop_length_and_gateway_headers() -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"10"),
        (b"transfer-encoding", b"chunked"),
        (b"set-cookie", b"a=b"),
        (b"cf-aig-log-id", b"x"),
        (b"cf-aig-cache-status", b"MISS"),
        (b"x-request-id", b"req_1"),
        (b"date", b"now"),
    ]
    assert policy.stored_headers(headers) == [(b"content-type", b"application/json"), (b"x-request-id", b"req_1")]


def test_is_stream() -> None:
    assert policy.is_stream([(b"content-type", b"text/event-stream; charset=utf-8")])
    assert policy.is_stream([(b"content-type", b"application/x-ndjson")])
    assert not policy.is_stream([(b"content-type", b"application/json")])
    assert not policy.is_stream([])


def test_a_custom_key_never_reaches_another_gateway_tokens_entries() -> None:
    """Tenants sharing a stored provider key send the same (no) credential: the token name keeps them apart."""
    none = policy.credential_hash([])
    a = key_for(custom_key="faq-1", credential=none, token="tenant-a")
    b = key_for({"other": "body"}, custom_key="faq-1", credential=none, token="tenant-b")
    assert a != b
    # Sharing body-derived entries is an operator choice; a client-chosen key is never shared.
    assert a != key_for(custom_key="faq-1", credential=none, token="tenant-b", share_across_tokens=True)
    assert a == key_for({"other": "body"}, custom_key="faq-1", credential=none, token="tenant-a")


def test_body_derived_keys_are_per_token_unless_shared() -> None:
    assert key_for(token="tenant-a") != key_for(token="tenant-b")
    assert key_for(token="tenant-a", share_across_tokens=True) == key_for(token="tenant-b", share_across_tokens=True)
    # Without authentication (no token) everyone shares, as before.
    assert key_for(token=None) == key_for(token=None, share_across_tokens=True)


def test_multipart_bodies_are_keyed_by_their_parts_not_the_random_boundary() -> None:
    """Issue 11 defect 8: the openai SDK picks a random boundary, so equal uploads never hit."""

    def upload(boundary: str, audio: bytes) -> bytes:
        return (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
                f"Content-Type: audio/wav\r\n\r\n"
            ).encode()
            + audio
            + f"\r\n--{boundary}--\r\n".encode()
        )

    def canonical(boundary: str, audio: bytes = b"RIFF....") -> bytes:
        ctype = f"multipart/form-data; boundary={boundary}".encode()
        return policy.canonical_body(upload(boundary, audio), None, ctype)

    assert canonical("1111") == canonical("2222")
    assert canonical("1111") != canonical("1111", b"RIFF...!")
    # without the content type (or when it lies) the raw bytes are the key, as before
    assert policy.canonical_body(upload("1111", b"x"), None) != policy.canonical_body(upload("2222", b"x"), None)


def test_canonical_json_is_the_same_bytes_as_before_orjson() -> None:
    """Keys stay stable across the switch to orjson: entries cached by an older version still hit."""
    body = {
        "model": "gpt-4o-mini",
        "temperature": 0.30000000000000004,
        "n": 1,
        "stop": None,
        "messages": [{"role": "user", "content": 'héllo \u2028 "quoted" \\ \n\t done'}],
        "nested": {"b": [1.5, 1e100, True], "a": {}},
    }
    expected = b"j" + json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert policy.canonical_body(b"", body) == expected
    huge = {"seed": 2**70}  # orjson refuses it: the slow path still gives a key
    assert policy.canonical_body(b"", huge) == b'j{"seed":1180591620717411303424}'


def test_exact_head_changes_with_every_part_and_never_equals_another_split() -> None:
    base = {
        "gateway_id": "gw",
        "provider": "openai",
        "method": "POST",
        "path": "chat/completions",
        "query": b"",
        "credential": policy.credential_hash([]),
        "tenant": None,
    }
    heads = {policy.exact_head(**base)}
    for part, other in [
        ("gateway_id", "gw2"),
        ("provider", "groq"),
        ("method", "GET"),
        ("path", "embeddings"),
        ("query", b"a=1"),
        ("credential", policy.credential_hash([(b"authorization", b"Bearer k")])),
        ("tenant", "team-a"),
        ("tenant", ""),  # a token named "" is not the absence of a token
    ]:
        heads.add(policy.exact_head(**{**base, part: other}))
    assert len(heads) == 9
    # length-prefixed: moving bytes from one part to the next never gives the same head
    assert policy.exact_head(**{**base, "provider": "open", "path": "aichat/completions"}) != policy.exact_head(
        **{**base, "provider": "openai", "path": "chat/completions"}
    )
