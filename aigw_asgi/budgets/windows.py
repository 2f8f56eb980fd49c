"""Budget windows: clock-aligned in UTC, named by the calendar (pure).

    day     00:00 UTC to the next 00:00                    "2025-06-15"
    week    Monday 00:00 UTC to the next Monday (ISO week)  "2025-W24"
    month   the 1st 00:00 UTC to the next 1st               "2025-06"
    total   forever: never resets                           "total"

A window's name is part of its counter's key, so a new window is simply a new counter: nothing
has to be reset at midnight, and every instance agrees on the boundary without talking.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..keys.model import Period

DAY = 86_400.0
KEEP_S = 40 * DAY
"""How long a finished window's counter is kept (read by nobody yet, but cheap and auditable)."""


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    start: float | None  # None for ``total``
    end: float | None  # None for ``total``: never resets

    def reset_in(self, now: float) -> float | None:
        """Seconds until this window ends (``None``: never)."""
        return None if self.end is None else max(self.end - now, 0.0)

    @property
    def expires_at(self) -> float | None:
        """When the counter of this window may be forgotten."""
        return None if self.end is None else self.end + KEEP_S


def window(period: Period, now: float) -> Window:
    if period == "total":
        return Window("total", None, None)
    moment = datetime.fromtimestamp(now, UTC)
    if period == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return Window(start.strftime("%Y-%m-%d"), start.timestamp(), (start + timedelta(days=1)).timestamp())
    if period == "week":
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        start = day - timedelta(days=day.weekday())
        year, week, _ = start.isocalendar()
        return Window(f"{year}-W{week:02d}", start.timestamp(), (start + timedelta(days=7)).timestamp())
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (
        start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    )
    return Window(start.strftime("%Y-%m"), start.timestamp(), following.timestamp())
