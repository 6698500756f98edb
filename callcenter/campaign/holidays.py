"""Vietnamese public holidays (Labour Code 2019, art. 112), solar and lunar. Pure computation.

Solar: New Year (1/1), Reunification Day (30/4), Labour Day (1/5), National Day (2/9 and one adjacent
day). Lunar: Tết — from the last day of the lunar year through the 4th (or 5th) of the first month —
and the Hùng Kings' commemoration (10th day of the 3rd lunar month).

The lunar dates come from the ``lunardate`` package, which follows the Chinese calendar (UTC+8). The
Vietnamese calendar is computed at UTC+7 and differs by a day in rare years (1985 and 2007 for Tết).
The government also fixes each year's exact Tết days and substitute days off by decree, so the
computed calendar is a starting point: operators add or remove days (``callcenter campaign holidays``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from lunardate import LunarDate


@dataclass(frozen=True, slots=True, order=True)
class HolidayDay:
    day: date
    name: str  # Vietnamese, as shown to operators
    kind: str  # solar | lunar | custom


def lunar_to_solar(year: int, month: int, day: int) -> date:
    """The solar date of a (non-leap) lunar date of the lunar year that starts in ``year``."""
    result: date = LunarDate(year, month, day).to_solar_date()
    return result


def tet_days(year: int, *, last_first_month_day: int = 5) -> list[date]:
    """Tết of the lunar year that starts in solar ``year``: the eve (last day of the old year) through
    the ``last_first_month_day``-th day of the first lunar month."""
    new_year = lunar_to_solar(year, 1, 1)
    eve = new_year - timedelta(days=1)  # 29 or 30 of the 12th month, whichever ends the year
    return [eve + timedelta(days=i) for i in range(last_first_month_day + 1)]


def vietnamese_holidays(
    year: int,
    *,
    tet_until: Literal[4, 5] = 5,
    national_day_adjacent: Literal["before", "after", "both"] = "both",
) -> list[HolidayDay]:
    """The public holidays of one solar year, sorted.

    ``tet_until``: Tết ends on the 4th or 5th of the first lunar month (the decree varies by year).
    ``national_day_adjacent``: the second National Day holiday is 1/9 or 3/9 depending on the year;
    "both" keeps both free of calls until the year's decree is known (a spare quiet day costs little).
    """
    days: list[HolidayDay] = [
        HolidayDay(date(year, 1, 1), "Tết Dương lịch", "solar"),
        HolidayDay(date(year, 4, 30), "Ngày Chiến thắng (30/4)", "solar"),
        HolidayDay(date(year, 5, 1), "Ngày Quốc tế Lao động (1/5)", "solar"),
        HolidayDay(date(year, 9, 2), "Quốc khánh (2/9)", "solar"),
    ]
    if national_day_adjacent in ("before", "both"):
        days.append(HolidayDay(date(year, 9, 1), "Quốc khánh (ngày liền kề)", "solar"))
    if national_day_adjacent in ("after", "both"):
        days.append(HolidayDay(date(year, 9, 3), "Quốc khánh (ngày liền kề)", "solar"))
    # Tết of this lunar year; also the eve of next year's Tết when it falls in this solar year (never in
    # practice: Tết is between 21 January and 20 February).
    for tet_year in (year, year + 1):
        for index, day in enumerate(tet_days(tet_year, last_first_month_day=tet_until)):
            if day.year == year:
                label = "Tết Nguyên đán (giao thừa)" if index == 0 else f"Tết Nguyên đán (mùng {index})"
                days.append(HolidayDay(day, label, "lunar"))
    days.append(HolidayDay(lunar_to_solar(year, 3, 10), "Giỗ Tổ Hùng Vương (10/3 âm lịch)", "lunar"))
    unique = {h.day: h for h in sorted(days)}
    return sorted(unique.values())
