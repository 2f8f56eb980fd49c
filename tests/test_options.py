from __future__ import annotations

import pytest

from aigw_asgi.errors import InvalidRequest
from aigw_asgi.options import parse_options


def h(**items: str) -> list[tuple[bytes, bytes]]:
    return [(k.replace("_", "-").encode(), v.encode()) for k, v in items.items()]


def test_all_headers_parse() -> None:
    opts = parse_options(
        h(
            cf_aig_cache_ttl="600",
            cf_aig_skip_cache="TRUE",
            cf_aig_cache_key="k1",
            cf_aig_metadata='{"team":"ai","user":12345,"test":true,"cf.user_id":"x"}',
            cf_aig_collect_log="false",
            cf_aig_collect_log_payload="false",
            cf_aig_custom_cost='{"per_token_in":0.000001,"per_token_out":0.000002}',
            cf_aig_request_timeout="1500",
            cf_aig_max_attempts="3",
            cf_aig_retry_delay="100",
            cf_aig_backoff="Exponential",
            cf_aig_byok_alias="team-a",
        )
    )
    assert opts.cache_ttl == 600 and opts.skip_cache is True and opts.cache_key == "k1"
    assert opts.metadata == {"team": "ai", "user": 12345, "test": True}  # cf.* is reserved, dropped
    assert opts.collect_log is False and opts.collect_log_payload is False
    assert opts.custom_cost is not None and opts.custom_cost.per_token_out == 0.000002
    assert (opts.request_timeout_ms, opts.max_attempts, opts.retry_delay_ms) == (1500, 3, 100)
    assert opts.backoff == "exponential" and opts.byok_alias == "team-a"


def test_legacy_names() -> None:
    opts = parse_options(h(cf_cache_ttl="120", cf_skip_cache="true"))
    assert opts.cache_ttl == 120 and opts.skip_cache


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("cf-aig-cache-ttl", "59"),
        ("cf-aig-cache-ttl", "2592001"),
        ("cf-aig-cache-ttl", "5m"),
        ("cf-aig-skip-cache", "yes"),
        ("cf-aig-metadata", "{not json"),
        ("cf-aig-metadata", "[1,2]"),
        ("cf-aig-metadata", '{"a":{"nested":1}}'),
        ("cf-aig-metadata", '{"a":null}'),
        ("cf-aig-metadata", '{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6}'),
        ("cf-aig-custom-cost", '{"per_token_in":-1}'),
        ("cf-aig-custom-cost", '{"per_token":1}'),
        ("cf-aig-max-attempts", "6"),
        ("cf-aig-max-attempts", "0"),
        ("cf-aig-retry-delay", "5001"),
        ("cf-aig-backoff", "fibonacci"),
        ("cf-aig-request-timeout", "-5"),
        ("cf-aig-otel-trace-id", "xyz"),
    ],
)
def test_invalid_values_are_400_naming_the_header(name: str, value: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_options([(name.encode(), value.encode())])
    assert info.value.status == 400 and info.value.code == 2004
    message = info.value.message
    assert message.startswith(f"Invalid header {name}: ")  # names the header, then says what it expects
    if len(value) >= 3:  # shorter values can occur in the expectation itself ("from 0 to 5000")
        assert value not in message  # no echo of arbitrary input


def test_the_headers_read_are_exactly_the_ones_parse_options_knows() -> None:
    """The quick name check (`_OPTION_HEADERS`) and the cases of the match must name the same
    headers: one added to the match alone would never be read."""
    import inspect
    import re

    from aigw_asgi import options

    cases = set(re.findall(r'"(cf-[a-z-]+)"', inspect.getsource(options.parse_options)))
    assert cases == {name.decode() for name in options._OPTION_HEADERS} and len(cases) == 16
    others = [(b"cf-aig-authorization", b"Bearer t"), (b"cf-cache-ttl-x", b"5"), (b"x-cf-aig-backoff", b"?")]
    ignored = parse_options(others)
    assert ignored == options.RequestOptions()
