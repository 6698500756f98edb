"""Reporting periods (month, quarter, year) in the province's local time, with their UTC bounds."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from callcenter.core.clock import VN_TZ
from callcenter.core.errors import ValidationError

_ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV"}
# The years a period may be asked for (Period.parse) and the wider range a Period may hold.
FIRST_YEAR, LAST_YEAR = 2000, 2100
_EARLIEST_YEAR = 1900  # a comparison or trailing window reaches back before FIRST_YEAR


class PeriodKind(enum.StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


@dataclass(frozen=True, order=True)
class Period:
    """A calendar month, quarter or year in Asia/Ho_Chi_Minh.

    ``index`` is the month (1-12) or the quarter (1-4); 1 for a year.
    """

    kind: PeriodKind
    year: int
    index: int = 1

    def __post_init__(self) -> None:
        limit = {PeriodKind.MONTH: 12, PeriodKind.QUARTER: 4, PeriodKind.YEAR: 1}[self.kind]
        if not 1 <= self.index <= limit:
            raise ValidationError(f"{self.kind} index {self.index} is outside 1..{limit}", field="period")
        # Wider than what may be asked for (see parse): a period's comparisons and trailing months
        # reach a year or two back, and there they simply find no data.
        if not _EARLIEST_YEAR <= self.year <= LAST_YEAR:
            raise ValidationError(
                f"year {self.year} is outside {_EARLIEST_YEAR}..{LAST_YEAR}", field="period"
            )

    @classmethod
    def parse(cls, text: str) -> Period:
        """``2026`` (year), ``2026-Q3`` (quarter) or ``2026-07`` (month), in 2000..2100."""
        value = text.strip().upper()
        if m := re.fullmatch(r"(\d{4})", value):
            kind, index = PeriodKind.YEAR, 1
        elif m := re.fullmatch(r"(\d{4})-Q([1-4])", value):
            kind, index = PeriodKind.QUARTER, int(m.group(2))
        elif m := re.fullmatch(r"(\d{4})-(\d{2})", value):
            kind, index = PeriodKind.MONTH, int(m.group(2))
        else:
            raise ValidationError(f"'{text}' is not a period; use 2026, 2026-Q3 or 2026-07", field="period")
        # Checked before the period is built: its own (wider) bound would name the wrong range.
        year = int(m.group(1))
        if not FIRST_YEAR <= year <= LAST_YEAR:
            raise ValidationError(f"year {year} is outside {FIRST_YEAR}..{LAST_YEAR}", field="period")
        return cls(kind, year, index)

    @classmethod
    def containing(cls, moment: datetime, kind: PeriodKind) -> Period:
        """The period of the given kind that contains an instant (judged in local time)."""
        local = moment.astimezone(VN_TZ)
        if kind == PeriodKind.MONTH:
            return cls(kind, local.year, local.month)
        if kind == PeriodKind.QUARTER:
            return cls(kind, local.year, (local.month - 1) // 3 + 1)
        return cls(kind, local.year)

    @property
    def first_month(self) -> int:
        if self.kind == PeriodKind.MONTH:
            return self.index
        if self.kind == PeriodKind.QUARTER:
            return 3 * (self.index - 1) + 1
        return 1

    @property
    def months(self) -> int:
        return {PeriodKind.MONTH: 1, PeriodKind.QUARTER: 3, PeriodKind.YEAR: 12}[self.kind]

    @property
    def start(self) -> datetime:
        """Local midnight of the first day, as an aware UTC instant (inclusive)."""
        return datetime(self.year, self.first_month, 1, tzinfo=VN_TZ).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """Local midnight after the last day, as an aware UTC instant (exclusive)."""
        month0 = self.first_month - 1 + self.months
        return datetime(self.year + month0 // 12, month0 % 12 + 1, 1, tzinfo=VN_TZ).astimezone(UTC)

    def month_keys(self) -> list[str]:
        """``YYYY-MM`` of every month inside the period."""
        return [f"{self.year:04d}-{m:02d}" for m in range(self.first_month, self.first_month + self.months)]

    def previous(self) -> Period:
        """The period just before (previous month, quarter or year)."""
        if self.kind == PeriodKind.YEAR or self.index == 1:
            last = {PeriodKind.MONTH: 12, PeriodKind.QUARTER: 4, PeriodKind.YEAR: 1}[self.kind]
            return Period(self.kind, self.year - 1, last)
        return Period(self.kind, self.year, self.index - 1)

    def same_last_year(self) -> Period:
        return Period(self.kind, self.year - 1, self.index)

    def year_period(self) -> Period:
        return Period(PeriodKind.YEAR, self.year)

    @property
    def key(self) -> str:
        """The machine form parsed by :meth:`parse`."""
        if self.kind == PeriodKind.YEAR:
            return f"{self.year:04d}"
        if self.kind == PeriodKind.QUARTER:
            return f"{self.year:04d}-Q{self.index}"
        return f"{self.year:04d}-{self.index:02d}"

    @property
    def label_vi(self) -> str:
        """How a Vietnamese official document names the period."""
        if self.kind == PeriodKind.YEAR:
            return f"Năm {self.year}"
        if self.kind == PeriodKind.QUARTER:
            return f"Quý {_ROMAN[self.index]}/{self.year}"
        return f"Tháng {self.index:02d}/{self.year}"


def month_key_to_period(key: str) -> Period:
    return Period(PeriodKind.MONTH, int(key[:4]), int(key[5:7]))


def trailing_months(end: Period, count: int) -> list[Period]:
    """The ``count`` months ending with the last month of ``end``, oldest first."""
    last = Period(PeriodKind.MONTH, end.year, end.first_month + end.months - 1)
    months = [last]
    while len(months) < count:
        months.append(months[-1].previous())
    return list(reversed(months))
