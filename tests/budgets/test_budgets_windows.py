"""Budget windows are clock-aligned UTC calendar periods (budgets/windows.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aigw_asgi.budgets.windows import window


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("period", "now", "name", "start", "end"),
    [
        ("day", "2025-06-15T13:45:00", "2025-06-15", "2025-06-15T00:00:00", "2025-06-16T00:00:00"),
        ("day", "2025-12-31T23:59:59", "2025-12-31", "2025-12-31T00:00:00", "2026-01-01T00:00:00"),
        ("week", "2025-06-15T13:45:00", "2025-W24", "2025-06-09T00:00:00", "2025-06-16T00:00:00"),  # a Sunday
        ("week", "2025-06-16T00:00:00", "2025-W25", "2025-06-16T00:00:00", "2025-06-23T00:00:00"),  # Monday
        ("week", "2026-01-01T12:00:00", "2026-W01", "2025-12-29T00:00:00", "2026-01-05T00:00:00"),  # ISO year
        ("month", "2025-06-15T13:45:00", "2025-06", "2025-06-01T00:00:00", "2025-07-01T00:00:00"),
        ("month", "2025-12-31T23:59:59", "2025-12", "2025-12-01T00:00:00", "2026-01-01T00:00:00"),
        ("month", "2024-02-29T10:00:00", "2024-02", "2024-02-01T00:00:00", "2024-03-01T00:00:00"),
    ],
)
def test_windows(period, now: str, name: str, start: str, end: str) -> None:
    win = window(period, ts(now))
    assert (win.name, win.start, win.end) == (name, ts(start), ts(end))
    assert win.reset_in(ts(now)) == ts(end) - ts(now)
    assert win.expires_at is not None and win.expires_at > win.end


def test_total_never_resets() -> None:
    win = window("total", ts("2025-06-15T13:45:00"))
    assert (win.name, win.start, win.end, win.reset_in(0), win.expires_at) == ("total", None, None, None, None)
