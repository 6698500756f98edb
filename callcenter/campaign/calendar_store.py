"""The holiday calendar in the database: seeded from the computed calendar, edited by operators."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from callcenter.campaign.holidays import vietnamese_holidays
from callcenter.campaign.models import Holiday
from callcenter.core.clock import VN_TZ
from callcenter.core.errors import NotFound, ValidationError

# The years the calendar knows (the lunar holidays are computed for these) and a name's length.
FIRST_YEAR, LAST_YEAR = 1900, 2100
MAX_NAME = 128  # holidays.name


def seed_holidays(session: Session, *, years: Iterable[int]) -> int:
    """Insert the computed public holidays of each year; days already in the table are left as they are."""
    added = 0
    for year in years:
        _check_year(year)
        existing = set(
            session.scalars(
                select(Holiday.day).where(Holiday.day >= date(year, 1, 1), Holiday.day <= date(year, 12, 31))
            )
        )
        for holiday in vietnamese_holidays(year):
            if holiday.day not in existing:
                session.add(Holiday(day=holiday.day, name=holiday.name, kind=holiday.kind))
                added += 1
    session.flush()
    return added


def ensure_years_seeded(session: Session, *, years: Iterable[int]) -> int:
    """Seed a year's public holidays if it has none yet (a campaign must never ring on Tết by omission).

    A year an operator already edited (any solar or lunar day present) is left alone, so removals stick.
    """
    to_seed = []
    for year in years:
        found = session.scalar(
            select(Holiday.day)
            .where(Holiday.day >= date(year, 1, 1), Holiday.day <= date(year, 12, 31))
            .where(Holiday.kind.in_(("solar", "lunar")))
            .limit(1)
        )
        if found is None:
            to_seed.append(year)
    return seed_holidays(session, years=to_seed) if to_seed else 0


def _check_year(year: int, field: str = "year") -> None:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise ValidationError(f"year {year} is outside {FIRST_YEAR}–{LAST_YEAR}", field=field)


def add_holiday(session: Session, *, day: date, name: str) -> Holiday:
    """Add (or rename) a no-call day, e.g. a substitute day off decreed for this year."""
    _check_year(day.year, "day")
    if not name.strip():
        raise ValidationError("a holiday needs a name", field="name")
    if len(name.strip()) > MAX_NAME:
        raise ValidationError(f"longer than {MAX_NAME} characters", field="name")
    row = session.get(Holiday, day)
    if row is None:
        row = Holiday(day=day, name=name.strip(), kind="custom")
        session.add(row)
    else:
        row.name = name.strip()
    session.flush()
    return row


def remove_holiday(session: Session, *, day: date) -> None:
    """Remove a day from the calendar (calls become possible on it again)."""
    result = session.execute(delete(Holiday).where(Holiday.day == day))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"{day.isoformat()} is not in the holiday calendar")


def list_holidays(session: Session, *, year: int | None = None) -> list[Holiday]:
    query = select(Holiday).order_by(Holiday.day)
    if year is not None:
        _check_year(year)
        query = query.where(Holiday.day >= date(year, 1, 1), Holiday.day <= date(year, 12, 31))
    return list(session.scalars(query))


def holiday_days(session: Session, *, start: datetime, end: datetime) -> frozenset[date]:
    """The no-call days between two instants (local dates, with a day of slack either side)."""
    first = start.astimezone(VN_TZ).date().replace(day=1)
    last = end.astimezone(VN_TZ).date()
    rows = session.scalars(
        select(Holiday.day).where(Holiday.day >= first, Holiday.day <= date(last.year + 1, 12, 31))
    )
    return frozenset(rows)
