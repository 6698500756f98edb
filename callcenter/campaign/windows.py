"""Calling windows: when the 1022 caller may ring a citizen. Pure; every decision is made in local time.

The province's zone is Asia/Ho_Chi_Minh (UTC+7 all year, no daylight saving). An instant is always
converted to local time *before* its weekday or hour is looked at: 23:30 UTC on a Friday is already
06:30 on Saturday in Da Nang, and comparing a UTC weekday with a local hour would call people on the
wrong day.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from callcenter.core.clock import VN_TZ

# Look this far ahead for an open window before declaring that the windows never open.
SEARCH_HORIZON_DAYS = 400

WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class WindowSpec(BaseModel):
    """One daily calling window in local time, on the given weekdays (0 = Monday … 6 = Sunday)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weekdays: tuple[Annotated[int, Field(ge=0, le=6)], ...]
    start: time
    end: time

    @model_validator(mode="after")
    def _start_before_end(self) -> WindowSpec:
        if not self.weekdays:
            raise ValueError("weekdays: at least one weekday is needed")
        if self.start >= self.end:
            raise ValueError(f"end: must be after start ({self.start:%H:%M} – {self.end:%H:%M})")
        return self


WEEKDAYS = (0, 1, 2, 3, 4)
DEFAULT_WINDOWS: tuple[WindowSpec, ...] = (
    WindowSpec(weekdays=WEEKDAYS, start=time(8, 0), end=time(11, 30)),
    WindowSpec(weekdays=WEEKDAYS, start=time(13, 30), end=time(17, 0)),
)
SATURDAY_MORNING = WindowSpec(weekdays=(5,), start=time(8, 0), end=time(11, 30))


@dataclass(frozen=True)
class CallingCalendar:
    """Daily windows plus the days with no calls at all (public holidays)."""

    windows: tuple[WindowSpec, ...] = DEFAULT_WINDOWS
    holidays: frozenset[date] = frozenset()
    tz: ZoneInfo = VN_TZ

    def _local(self, at: datetime) -> datetime:
        if at.tzinfo is None:
            raise ValueError("calling windows need a timezone-aware instant")
        return at.astimezone(self.tz)

    def _spans_on(self, day: date) -> list[tuple[datetime, datetime]]:
        """The open intervals of one local day, sorted, as aware instants."""
        if day in self.holidays:
            return []
        spans = [
            (datetime.combine(day, w.start, self.tz), datetime.combine(day, w.end, self.tz))
            for w in self.windows
            if day.weekday() in w.weekdays
        ]
        return sorted(spans)

    def is_open(self, at: datetime) -> bool:
        """Whether a call may start at ``at``: inside a window of a local working day, not a holiday."""
        local = self._local(at)
        return any(start <= local < end for start, end in self._spans_on(local.date()))

    def open_spans(
        self, start: datetime, *, days: int = SEARCH_HORIZON_DAYS
    ) -> Iterator[tuple[datetime, datetime]]:
        """Open intervals from ``start`` on (the first one clipped to ``start``), for ``days`` days."""
        local = self._local(start)
        for offset in range(days + 1):
            for span_start, span_end in self._spans_on(local.date() + timedelta(days=offset)):
                if span_end <= local:
                    continue
                yield max(span_start, local), span_end

    def next_open(self, at: datetime) -> datetime | None:
        """``at`` itself if open, else the start of the next open window; ``None`` if none within a year."""
        for span_start, _ in self.open_spans(at):
            return span_start.astimezone(at.tzinfo)
        return None

    def next_day_open(self, at: datetime) -> datetime | None:
        """The first open instant of a later local day than ``at``'s (used when a daily cap is reached)."""
        local = self._local(at)
        tomorrow = datetime.combine(local.date() + timedelta(days=1), time(0), self.tz)
        return self.next_open(tomorrow)

    def open_seconds_between(self, start: datetime, end: datetime) -> float:
        """How many seconds of calling time lie between two instants."""
        if end <= start:
            return 0.0
        days = (end - start).days + 1
        total = 0.0
        for span_start, span_end in self.open_spans(start, days=days):
            if span_start >= end:
                break
            total += (min(span_end, end) - span_start).total_seconds()
        return total

    def after_open_seconds(self, start: datetime, seconds: float) -> datetime | None:
        """The instant at which ``seconds`` of calling time have passed since ``start``."""
        remaining = seconds
        for span_start, span_end in self.open_spans(start, days=SEARCH_HORIZON_DAYS * 5):
            length = (span_end - span_start).total_seconds()
            if remaining <= length:
                return (span_start + timedelta(seconds=remaining)).astimezone(start.tzinfo)
            remaining -= length
        return None


def windows_with_saturday(windows: Iterable[WindowSpec], saturday_morning: bool) -> tuple[WindowSpec, ...]:
    """The configured windows, plus Saturday 08:00–11:30 when the campaign allows it."""
    result = tuple(windows)
    if saturday_morning and SATURDAY_MORNING not in result:
        result += (SATURDAY_MORNING,)
    return result


WEEKDAY_NAMES_VI = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật")


def describe(windows: Iterable[WindowSpec], *, vietnamese: bool = False) -> str:
    """``mon-fri 08:00–11:30, mon-fri 13:30–17:00`` for error messages and configuration, or with
    ``vietnamese`` ``Thứ Hai–Thứ Sáu 08:00–11:30; Thứ Hai–Thứ Sáu 13:30–17:00`` for operators' tables."""
    names, dash, comma, joiner = (
        (WEEKDAY_NAMES_VI, "–", ", ", "; ") if vietnamese else (WEEKDAY_NAMES, "-", ",", ", ")
    )
    parts = []
    for w in windows:
        days = sorted(w.weekdays)
        if days == list(range(days[0], days[-1] + 1)) and len(days) > 1:
            label = f"{names[days[0]]}{dash}{names[days[-1]]}"
        else:
            label = comma.join(names[d] for d in days)
        parts.append(f"{label} {w.start:%H:%M}–{w.end:%H:%M}")
    return joiner.join(parts)
