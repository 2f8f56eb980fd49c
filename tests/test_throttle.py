"""FailureThrottle, pure: failures per address within a minute of the first, bounded memory."""

from __future__ import annotations

from aigw_asgi.throttle import FailureThrottle, address


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_limit_blocks_the_address_until_its_minute_is_over() -> None:
    clock = Clock()
    throttle = FailureThrottle(3, clock=clock)
    for _ in range(3):
        assert throttle.blocked("203.0.113.1") is None
        throttle.failed("203.0.113.1")
    refusal = throttle.blocked("203.0.113.1")
    assert refusal is not None and (refusal.status, refusal.code) == (429, 2003)
    assert refusal.headers == [(b"retry-after", b"60")]
    assert throttle.blocked("203.0.113.2") is None  # another client is not affected
    clock.now += 45.5
    assert throttle.blocked("203.0.113.1").headers == [(b"retry-after", b"15")]  # type: ignore[union-attr]
    clock.now += 15
    assert throttle.blocked("203.0.113.1") is None and len(throttle) == 0


def test_failures_spread_beyond_a_minute_never_block() -> None:
    clock = Clock()
    throttle = FailureThrottle(3, clock=clock)
    for _ in range(10):
        throttle.failed("203.0.113.1")
        throttle.failed("203.0.113.1")
        clock.now += 61
        assert throttle.blocked("203.0.113.1") is None


def test_memory_is_bounded_by_max_clients() -> None:
    clock = Clock()
    throttle = FailureThrottle(3, max_clients=100, clock=clock)
    for i in range(1000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(throttle) <= 100
    throttle.failed("203.0.113.9")
    throttle.failed("203.0.113.9")
    throttle.failed("203.0.113.9")
    assert throttle.blocked("203.0.113.9") is not None  # the newest addresses are kept


def test_the_address_comes_from_the_trusted_proxy_header_when_configured() -> None:
    headers = [(b"x-forwarded-for", b"198.51.100.1, 203.0.113.5")]
    assert address("127.0.0.1", headers, None) == "127.0.0.1"
    assert address("127.0.0.1", headers, b"x-forwarded-for") == "203.0.113.5"  # the proxy's own entry
    assert address("127.0.0.1", [], b"x-forwarded-for") == "127.0.0.1"
