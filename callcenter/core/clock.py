"""Clocks: the system clock in production, a controllable one in tests. All times are aware."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from time import monotonic as _monotonic
from typing import Protocol
from zoneinfo import ZoneInfo

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to; for tests and compressed-time simulation."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        self._now = self._now + delta
        return self._now

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("ManualClock.set needs a timezone-aware time")
        self._now = when


def ensure_aware(value: datetime, default_tz: ZoneInfo = VN_TZ) -> datetime:
    """Attach the province's zone to a naive local time; leave aware times alone."""
    return value if value.tzinfo is not None else value.replace(tzinfo=default_tz)


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_local(value: datetime) -> datetime:
    return value.astimezone(VN_TZ)


__all__ = [
    "VN_TZ",
    "Clock",
    "CompressedClock",
    "ManualClock",
    "SystemClock",
    "ensure_aware",
    "timedelta",
    "to_local",
    "utcnow",
]


class CompressedClock:
    """Simulated time for demos and benchmarks: starts at ``start`` and runs ``factor`` times faster."""

    def __init__(self, start: datetime, factor: float) -> None:
        if start.tzinfo is None:
            raise ValueError("CompressedClock needs a timezone-aware start time")
        if factor <= 0:
            raise ValueError("CompressedClock needs a positive factor")
        self.start = start
        self.factor = factor
        self._t0 = _monotonic()
        self._skipped = timedelta(0)

    def now(self) -> datetime:
        return self.start + self._skipped + timedelta(seconds=(_monotonic() - self._t0) * self.factor)

    def skip_to(self, when: datetime) -> None:
        """Jump ahead over idle simulated time (nights, lunch, waits for retries); never backwards."""
        ahead = when - self.now()
        if ahead > timedelta(0):
            self._skipped += ahead

    def simulated(self, real_seconds: float) -> timedelta:
        return timedelta(seconds=real_seconds * self.factor)
