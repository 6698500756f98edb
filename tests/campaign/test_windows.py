"""Calling windows in local time, holidays (solar and lunar), with a controllable clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from callcenter.campaign.holidays import tet_days, vietnamese_holidays
from callcenter.campaign.rules import parse_rules
from callcenter.campaign.windows import CallingCalendar, WindowSpec
from callcenter.core.clock import VN_TZ, ManualClock
from callcenter.core.errors import ValidationError


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=VN_TZ)


CAL = CallingCalendar()  # Mon–Fri 08:00–11:30 and 13:30–17:00
FRIDAY = date(2026, 11, 20)
assert FRIDAY.weekday() == 4


def test_default_windows_morning_and_afternoon() -> None:
    assert not CAL.is_open(local(2026, 11, 20, 7, 59))
    assert CAL.is_open(local(2026, 11, 20, 8, 0))
    assert CAL.is_open(local(2026, 11, 20, 11, 29))
    assert not CAL.is_open(local(2026, 11, 20, 11, 30))  # lunch
    assert not CAL.is_open(local(2026, 11, 20, 13, 29))
    assert CAL.is_open(local(2026, 11, 20, 13, 30))
    assert not CAL.is_open(local(2026, 11, 20, 17, 0))


def test_next_open_crosses_lunch() -> None:
    assert CAL.next_open(local(2026, 11, 20, 11, 45)) == local(2026, 11, 20, 13, 30)


def test_next_open_crosses_the_evening_and_the_weekend() -> None:
    assert CAL.next_open(local(2026, 11, 19, 18, 0)) == local(2026, 11, 20, 8, 0)
    assert CAL.next_open(local(2026, 11, 20, 17, 0)) == local(2026, 11, 23, 8, 0)  # Friday → Monday


def test_next_open_returns_the_instant_itself_when_open() -> None:
    at = local(2026, 11, 20, 9, 15)
    assert CAL.next_open(at) == at


def test_utc_instant_late_on_friday_is_saturday_morning_locally() -> None:
    # 23:30 UTC on Friday is 06:30 on Saturday in Da Nang: a UTC weekday would say "Friday, open soon".
    friday_late_utc = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
    assert friday_late_utc.astimezone(VN_TZ).weekday() == 5
    assert not CAL.is_open(friday_late_utc)
    assert CAL.next_open(friday_late_utc) == local(2026, 11, 23, 8, 0)
    with_saturday = parse_rules({"saturday_morning": True}).calendar()
    assert with_saturday.next_open(friday_late_utc) == local(2026, 11, 21, 8, 0)
    assert with_saturday.is_open(datetime(2026, 11, 21, 1, 0, tzinfo=UTC))  # 08:00 Saturday local
    assert not with_saturday.is_open(datetime(2026, 11, 21, 6, 30, tzinfo=UTC))  # 13:30 Saturday local


def test_utc_morning_hours_are_local_afternoon() -> None:
    # 02:00 UTC is 09:00 local (open); 10:00 UTC is 17:00 local (closed). No daylight saving ever.
    assert CAL.is_open(datetime(2026, 11, 20, 2, 0, tzinfo=UTC))
    assert not CAL.is_open(datetime(2026, 11, 20, 10, 0, tzinfo=UTC))
    assert CAL.is_open(datetime(2026, 7, 20, 2, 0, tzinfo=UTC))  # same offset in summer


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError):
        CAL.is_open(datetime(2026, 11, 20, 9, 0))


def test_holidays_close_the_whole_day_and_next_open_skips_tet() -> None:
    cal = CallingCalendar(holidays=frozenset(h.day for h in vietnamese_holidays(2026)))
    assert not cal.is_open(local(2026, 2, 17, 9, 0))  # mùng 1 Tết, a Tuesday
    # From the eve of Tết (16/2) the next working window is after mùng 5 (21/2, a Saturday): Monday 23/2.
    assert cal.next_open(local(2026, 2, 16, 7, 0)) == local(2026, 2, 23, 8, 0)
    assert not cal.is_open(local(2026, 4, 30, 9, 0))
    assert cal.next_open(local(2026, 4, 29, 16, 59)) == local(2026, 4, 29, 16, 59)


def test_manual_clock_walks_through_a_day() -> None:
    clock = ManualClock(local(2026, 11, 20, 7, 0))
    seen = []
    while clock.now() < local(2026, 11, 20, 18, 0):
        seen.append(CAL.is_open(clock.now()))
        clock.advance(timedelta(minutes=30))
    # 07:00 … 17:30 every half hour: open at 08:00–11:00 (7 slots) and 13:30–16:30 (7 slots)
    assert sum(seen) == 14


def test_open_seconds_and_advancing_through_windows() -> None:
    day_start = local(2026, 11, 20, 0, 0)
    assert CAL.open_seconds_between(day_start, day_start + timedelta(days=1)) == 7 * 3600
    # 3.5 h of calling time from Friday 10:00 = 1.5 h Friday morning, 2 h afternoon → 15:30 Friday
    assert CAL.after_open_seconds(local(2026, 11, 20, 10, 0), 3.5 * 3600) == local(2026, 11, 20, 15, 30)
    # 8 h from Friday 10:00: 5 h Friday, then 3 h Monday → 11:00 Monday
    assert CAL.after_open_seconds(local(2026, 11, 20, 10, 0), 8 * 3600) == local(2026, 11, 23, 11, 0)


def test_next_day_open_for_daily_caps() -> None:
    assert CAL.next_day_open(local(2026, 11, 19, 9, 0)) == local(2026, 11, 20, 8, 0)
    assert CAL.next_day_open(local(2026, 11, 20, 9, 0)) == local(2026, 11, 23, 8, 0)


def test_window_that_never_opens_is_detected() -> None:
    sundays_only = CallingCalendar(
        windows=(WindowSpec(weekdays=(6,), start=time(8), end=time(9)),), holidays=frozenset()
    )
    assert sundays_only.next_open(local(2026, 11, 20)) == local(2026, 11, 22, 8, 0)
    everything_holiday = CallingCalendar(
        holidays=frozenset(date(2026, 1, 1) + timedelta(days=i) for i in range(800))
    )
    assert everything_holiday.next_open(local(2026, 1, 1)) is None


@pytest.mark.parametrize(
    ("rules", "field"),
    [({"windows": [{"weekdays": [0], "start": "11:00", "end": "08:00"}]}, "calling_rules.windows.0.end"),
     # weekday 7 does not exist
     ({"windows": [{"weekdays": [7], "start": "08:00", "end": "09:00"}]},
      "calling_rules.windows.0.weekdays.0"),
     ({"windows": [{"weekdays": [], "start": "08:00", "end": "09:00"}]}, "calling_rules.windows.0.weekdays"),
     ({"caps": {"max_attempts_per_phone_per_day": 0}}, "calling_rules.caps.max_attempts_per_phone_per_day"),
     ({"retry": {"rules": {"busy": {"delay_minutes": 0, "max_attempts": 2}}}},
      "calling_rules.retry.rules.busy.delay_minutes"),
     ({"retry": {"rules": {"rang_twice": {"delay_minutes": 5, "max_attempts": 2}}}},
      "calling_rules.retry.rules.rang_twice.[key]"),
     ({"lunch": True}, "calling_rules.lunch")],
)  # fmt: skip
def test_bad_rules_name_the_field(rules: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_rules(rules)
    assert err.value.field == field


# --- holidays ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("year", "new_year", "hung_kings"),
    [(2024, date(2024, 2, 10), date(2024, 4, 18)), (2025, date(2025, 1, 29), date(2025, 4, 7)),
     (2026, date(2026, 2, 17), date(2026, 4, 26)), (2027, date(2027, 2, 6), date(2027, 4, 16))],
)  # fmt: skip
def test_lunar_holidays_match_the_published_calendar(year: int, new_year: date, hung_kings: date) -> None:
    days = {h.day: h for h in vietnamese_holidays(year)}
    assert new_year in days and days[new_year].kind == "lunar"
    assert new_year - timedelta(days=1) in days  # the eve, last day of the lunar year
    assert hung_kings in days and "Hùng" in days[hung_kings].name


def test_tet_runs_from_the_eve_to_the_fourth_or_fifth() -> None:
    assert tet_days(2026, last_first_month_day=4) == [date(2026, 2, 16) + timedelta(days=i) for i in range(5)]
    assert len(tet_days(2026)) == 6


def test_solar_holidays_and_the_national_day_adjacent_day() -> None:
    days = {h.day for h in vietnamese_holidays(2026, national_day_adjacent="after")}
    assert {date(2026, 1, 1), date(2026, 4, 30), date(2026, 5, 1), date(2026, 9, 2), date(2026, 9, 3)} <= days
    assert date(2026, 9, 1) not in days
    assert date(2026, 9, 1) in {h.day for h in vietnamese_holidays(2026)}  # "both" is the default
