"""Figures aggregated in SQL, identical on SQLite and PostgreSQL, against hand counts and a brute force."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from callcenter.analysis import service, stats
from callcenter.analysis.periods import Period, trailing_months
from callcenter.core.errors import ValidationError

from .conftest import Builder

MARCH = Period.parse("2026-03")


def test_agency_figures_by_hand(db_session: Session, small_city: dict[str, Any]) -> None:
    summary = service.summarise(db_session, period=MARCH, group_by=("agency",))
    rows = {r.agency_code: r for r in summary.rows}
    fa = rows["A"].figures
    assert rows["A"].agency_name == "Sở Xây dựng"
    assert (fa.eligible, fa.eligible_late_overdue) == (100, 20)
    # Called: 10 surveyed + 3 more dossiers; reached: 10 + 1.
    assert (fa.called, fa.reached, fa.attempts) == (13, 11, 14)
    # Completed: 10 calls + 1 web + 1 paper (1 March local).
    assert (fa.completed, fa.completed_call) == (12, 10)
    assert (fa.rated, fa.satisfied, fa.unsatisfied) == (12, 7, 5)
    assert fa.satisfied_rate == pytest.approx(7 / 12)
    ci = stats.wilson_interval(7, 12)
    assert fa.satisfied_interval == ci
    assert fa.response_rate == pytest.approx(10 / 13)
    assert fa.contact_rate == pytest.approx(11 / 13)
    assert fa.completion_rate == pytest.approx(10 / 11)
    assert (fa.rated_on_time, fa.rated_late_overdue) == (4, 6)
    assert fa.on_time_rate == pytest.approx(3 / 4)
    assert fa.late_overdue_rate == pytest.approx(2 / 6)
    assert fa.weighted is not None
    assert fa.weighted.estimate == pytest.approx(0.8 * 3 / 4 + 0.2 * 2 / 6)
    reasons = {r.code: (r.count, r.share) for r in fa.reasons}
    assert reasons == {
        2: (3, pytest.approx(3 / 5)),
        4: (2, pytest.approx(2 / 5)),
        9: (1, pytest.approx(1 / 5)),
    }
    # Year N = 200 → n = floor(200 / 1.98) = 101; March holds 100 of the 200 → ceil(50.5) = 51.
    assert fa.required_minimum == 51
    assert fa.attainment == pytest.approx(12 / 51)
    assert fa.previous is not None and fa.last_year is not None
    assert fa.previous.period.key == "2026-02"
    assert (fa.previous.rated, fa.previous.satisfied_rate) == (2, 1.0)
    assert fa.previous.change == pytest.approx(7 / 12 - 1.0)
    assert (fa.last_year.rated, fa.last_year.satisfied_rate) == (4, 0.25)
    assert fa.last_year.change == pytest.approx(7 / 12 - 0.25)

    fb = rows["B"].figures
    assert (fb.rated, fb.satisfied, fb.completed) == (1, 0, 1)
    assert [(r.code, r.count) for r in fb.reasons] == [(6, 1)]

    total = summary.total
    assert (total.rated, total.satisfied, total.called) == (13, 7, 14)
    assert total.eligible == 101
    # B has N = 1 in the year: 1 / 1.0049 truncates to 0 under the decision's rounding.
    assert total.required_minimum == 51 + 0


def test_channel_split_and_combined(db_session: Session, small_city: dict[str, Any]) -> None:
    a = small_city["a"]
    summary = service.summarise(db_session, period=MARCH, group_by=("agency", "channel"), agency_id=a.id)
    by_channel = {r.key.channel: r.figures for r in summary.rows}
    assert set(by_channel) == {"call", "web", "paper"}
    assert (by_channel["call"].rated, by_channel["call"].satisfied, by_channel["call"].called) == (10, 5, 13)
    assert (by_channel["web"].rated, by_channel["web"].called) == (1, 0)
    assert by_channel["paper"].rated == 1
    assert by_channel["web"].eligible == 100  # dossier-side figures belong to every channel row
    assert summary.total.rated == 12
    only_web = service.summarise(db_session, period=MARCH, channel="web", agency_id=a.id)
    assert (only_web.total.rated, only_web.total.called) == (1, 0)
    april = service.summarise(db_session, period=Period.parse("2026-04"), channel="web")
    assert (april.total.rated, april.total.satisfied) == (1, 0)
    assert [(r.code, r.count) for r in april.total.reasons] == [(1, 1)]


def test_field_dimension(db_session: Session, small_city: dict[str, Any]) -> None:
    summary = service.summarise(db_session, period=MARCH, group_by=("agency", "field"))
    cells = {(r.agency_code, r.field_code): r.figures for r in summary.rows}
    assert cells[("A", "F1")].rated == 4 + 1 + 1
    assert cells[("A", "F2")].rated == 6
    assert cells[("A", "F2")].eligible == 20
    assert cells[("A", "F1")].required_minimum is None  # the minimum applies to a whole agency
    assert cells[("B", "F1")].satisfied == 0


def test_quarter_and_year(db_session: Session, small_city: dict[str, Any]) -> None:
    q1 = service.summarise(db_session, period=Period.parse("2026-Q1"))
    year = service.summarise(db_session, period=Period.parse("2026"))
    a_q1 = next(r for r in q1.rows if r.agency_code == "A").figures
    a_year = next(r for r in year.rows if r.agency_code == "A").figures
    assert a_q1.rated == 12 + 2  # March + February
    assert a_year.rated == 12 + 2 + 1  # + the April web answer
    assert a_year.eligible == 200
    assert a_year.required_minimum == 101


def test_monthly_trend_in_local_time(db_session: Session, small_city: dict[str, Any]) -> None:
    points = service.monthly_trend(db_session, months=trailing_months(Period.parse("2026-04"), 3))
    assert [(p.month.key, p.rated, p.satisfied) for p in points] == [
        ("2026-02", 2, 2),
        ("2026-03", 13, 7),
        ("2026-04", 1, 0),
    ]
    by_agency = service.monthly_trend(db_session, months=[MARCH], by_agency=True)
    assert sorted((p.rated, p.satisfied) for p in by_agency) == [(1, 0), (12, 7)]
    months = trailing_months(Period.parse("2026-04"), 3)
    summed = service.sum_trend(service.monthly_trend(db_session, months=months, by_agency=True), months)
    assert summed == service.monthly_trend(db_session, months=months)


def test_bad_arguments_are_named(db_session: Session) -> None:
    with pytest.raises(ValidationError, match="group_by"):
        service.summarise(db_session, period=MARCH, group_by=("agency", "colour"))
    with pytest.raises(ValidationError, match="channel"):
        service.summarise(db_session, period=MARCH, channel="fax")
    with pytest.raises(ValidationError, match="agency"):
        service.agency_by_code(db_session, "NOPE")


def test_against_brute_force_recomputation(db_session: Session, build: Builder) -> None:
    """Random data; every figure recomputed in plain Python from the generated records."""
    rnd = random.Random(2026)
    agencies = [build.agency(f"R{i}") for i in range(3)]
    fields = [build.field(f"RF{i}") for i in range(3)]
    dossiers: list[tuple[int, int, str, datetime]] = []  # agency id, field id, stratum, returned_at
    answers: list[tuple[int, int | None, str, str, bool | None, tuple[int, ...], datetime, str]] = []
    calls: list[tuple[int, int, int, str, datetime]] = []  # dossier id, agency, field, outcome, at
    start = datetime(2026, 5, 25, tzinfo=UTC)
    for _ in range(160):
        ag, fl = rnd.choice(agencies), rnd.choice(fields)
        tl = rnd.choice(["on_time", "on_time", "late", "overdue"])
        returned = start + timedelta(hours=rnd.randint(0, 24 * 40))
        d = build.dossier(ag, fl, returned_at=returned, timeliness=tl)
        stratum = "on_time" if tl == "on_time" else "late_overdue"
        dossiers.append((ag.id, fl.id, stratum, returned))
        for _k in range(rnd.randint(0, 2)):
            at = returned + timedelta(hours=rnd.randint(1, 24 * 10))
            outcome = rnd.choice(["answered", "busy", "no_answer", "dropped"])
            att = build.attempt(d, at=at, outcome=outcome)
            calls.append((d.id, ag.id, fl.id, outcome, at))
            if outcome == "answered" and rnd.random() < 0.8:
                ok = rnd.random() < 0.6
                reasons = () if ok else tuple(sorted(rnd.sample(range(1, 10), rnd.randint(0, 2))))
                status = rnd.choice(["completed", "completed", "partial"])
                ans_at = at + timedelta(seconds=50)
                build.response(
                    agency=ag,
                    fld=fl,
                    answered_at=ans_at,
                    satisfied=ok,
                    reasons=reasons,
                    dossier=d,
                    attempt=att,
                    status=status,
                )
                answers.append((ag.id, fl.id, "call", stratum, ok, reasons, ans_at, status))
                break
    for _ in range(40):
        ag, fl = rnd.choice(agencies), rnd.choice(fields)
        ch = rnd.choice(["web", "paper", "independent"])
        ans_at = start + timedelta(hours=rnd.randint(0, 24 * 40))
        ok = rnd.random() < 0.7
        reasons = () if ok else (rnd.randint(1, 9),)
        build.response(agency=ag, fld=fl, answered_at=ans_at, satisfied=ok, reasons=reasons, channel=ch)
        answers.append((ag.id, fl.id, ch, "unknown", ok, reasons, ans_at, "completed"))

    period = Period.parse("2026-06")

    def inside(t: datetime) -> bool:
        return period.start <= t < period.end

    summary = service.summarise(db_session, period=period, group_by=("agency", "field", "channel"))
    expected: dict[tuple[int, int | None, str], dict[str, object]] = defaultdict(
        lambda: {"rated": 0, "satisfied": 0, "completed": 0, "reasons": defaultdict(int)}
    )
    for ag_id, fl_id, ch, _s, ok, reasons, t, status in answers:
        if not inside(t):
            continue
        e = expected[(ag_id, fl_id, ch)]
        e["completed"] += status == "completed"  # type: ignore[operator]
        e["rated"] += 1  # type: ignore[operator]
        e["satisfied"] += bool(ok)  # type: ignore[operator]
        if not ok:
            for c in reasons:
                e["reasons"][c] += 1  # type: ignore[index]
    got = {(r.key.agency_id, r.key.field_id, r.key.channel): r.figures for r in summary.rows}
    for key, e in expected.items():
        f = got[key]
        assert (f.rated, f.satisfied, f.completed) == (e["rated"], e["satisfied"], e["completed"]), key
        assert {r.code: r.count for r in f.reasons} == dict(e["reasons"])  # type: ignore[call-overload]
    assert sum(f.rated for f in got.values()) == sum(e["rated"] for e in expected.values())  # type: ignore[misc]

    # Per agency: called / reached distinct dossiers, and the stratified estimate from raw rows.
    by_agency = {r.key.agency_id: r.figures for r in service.summarise(db_session, period=period).rows}
    for ag in agencies:
        called = {d for d, a, _f, _o, t in calls if a == ag.id and inside(t)}
        reached = {d for d, a, _f, o, t in calls if a == ag.id and inside(t) and o in ("answered", "dropped")}
        f = by_agency[ag.id]
        assert (f.called, f.reached) == (len(called), len(reached))
        pop = defaultdict(int)
        for a, _f, s, t in dossiers:
            if a == ag.id and inside(t):
                pop[s] += 1
        assert f.eligible == sum(pop.values())
        cell: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for a, _fl, _ch, s, ok, _r, t, _st in answers:
            if a == ag.id and inside(t) and s != "unknown":
                cell[s][0] += 1
                cell[s][1] += bool(ok)
        covered = {s: pop[s] for s in cell if pop[s] > 0}
        if covered:
            brute = sum(pop[s] / sum(covered.values()) * cell[s][1] / cell[s][0] for s in covered)
            assert f.weighted is not None
            assert f.weighted.estimate == pytest.approx(brute)


def test_a_response_on_a_cancelled_dossier_counts_but_has_no_stratum(
    db_session: Session, build: Builder
) -> None:
    # Cancelled dossiers are not in the population (returned dossiers): a response linked to one (an
    # import from another channel) counts in the raw figures but cannot be weighted into a stratum.
    ag, fl = build.agency("C"), build.field("F")
    at = datetime(2026, 3, 10, 3, tzinfo=UTC)
    for satisfied in (True, False):
        d = build.dossier(ag, fl, returned_at=at)
        build.called_response(d, ag, fl, at=at + timedelta(days=1), satisfied=satisfied)
    cancelled = build.dossier(ag, fl, returned_at=None, timeliness="cancelled")
    build.response(
        agency=ag,
        fld=fl,
        answered_at=at + timedelta(days=2),
        satisfied=True,
        channel="web",
        dossier=cancelled,
    )
    f = service.summarise(db_session, period=MARCH, group_by=("agency",)).rows[0].figures
    assert (f.eligible, f.rated, f.satisfied) == (2, 3, 2)
    assert (f.rated_on_time, f.rated_late_overdue) == (2, 0)
    assert f.weighted is not None and f.weighted.estimate == pytest.approx(1 / 2)


def test_views_from_one_set_of_queries_match_separate_summaries(
    db_session: Session, small_city: dict[str, Any]
) -> None:
    views = [("agency",), ("agency", "field"), ("channel",), ("field", "channel")]
    together = service.summarise_views(db_session, period=MARCH, views=views)
    for view, summary in zip(views, together, strict=True):
        alone = service.summarise(db_session, period=MARCH, group_by=view)
        assert summary.group_by == alone.group_by
        assert [(r.key, r.figures) for r in summary.rows] == [(r.key, r.figures) for r in alone.rows]
        assert summary.total == alone.total


def _two_agencies_in_2026(build: Builder) -> dict[str, Any]:
    """A returns 20 dossiers in 2026 (12 in F1, 8 in F2), B returns 30; a few answers for each."""
    a, b = build.agency("A"), build.agency("B")
    f1, f2 = build.field("F1"), build.field("F2")
    for i in range(20):
        at = datetime(2026, 2 if i % 2 else 8, 3 + i, 3, tzinfo=UTC)  # half in Q1, half in Q3
        fld = f1 if i < 12 else f2
        d = build.dossier(a, fld, returned_at=at)
        if i in (1, 13):
            build.called_response(d, a, fld, at=at + timedelta(days=1), satisfied=True)
    for i in range(30):
        at = datetime(2026, 5, 1 + i % 28, 3, tzinfo=UTC)
        d = build.dossier(b, f1, returned_at=at)
        if i == 0:
            build.called_response(d, b, f1, at=at + timedelta(days=1), satisfied=False)
    return {"a": a, "b": b, "f1": f1, "f2": f2}


@pytest.mark.parametrize(
    ("policy", "params", "expected"),
    [
        # 10 surveys split 20 : 30 over the whole city; A's own summary once gave A all 10.
        ("fixed_total", {"total": 10}, {"A": 4, "B": 6}),
        # n = N / (1 + N·e²), e = 7 %: 20 / 1.098 → 18, 30 / 1.147 → 26.
        ("danang_2223", None, {"A": 18, "B": 26}),
    ],
)
def test_an_agency_yearly_minimum_is_the_same_in_the_city_and_in_its_own_summary(
    db_session: Session, build: Builder, policy: str, params: dict[str, int] | None, expected: dict[str, int]
) -> None:
    s = _two_agencies_in_2026(build)
    year = Period.parse("2026")
    city = service.summarise(db_session, period=year, policy=policy, policy_params=params)
    assert {r.agency_code: r.figures.required_minimum for r in city.rows} == expected
    assert city.total.required_minimum == sum(expected.values())
    for code, agency in (("A", s["a"]), ("B", s["b"])):
        own = service.summarise(
            db_session, period=year, agency_id=agency.id, policy=policy, policy_params=params
        )
        (row,) = own.rows
        assert row.figures.required_minimum == expected[code]
        assert own.total.required_minimum == expected[code]
        # The agency report's view (its fields, one total row) carries the same minimum.
        by_field = service.summarise(
            db_session,
            period=year,
            group_by=("agency", "field"),
            agency_id=agency.id,
            policy=policy,
            policy_params=params,
        )
        assert by_field.total.required_minimum == expected[code]
        # A quarter is the same share of that minimum in both summaries.
        q1_city = service.summarise(
            db_session, period=Period.parse("2026-Q1"), policy=policy, policy_params=params
        )
        q1_own = service.summarise(
            db_session,
            period=Period.parse("2026-Q1"),
            agency_id=agency.id,
            policy=policy,
            policy_params=params,
        )
        q1_city_row = next((r for r in q1_city.rows if r.agency_code == code), None)
        assert q1_own.total.required_minimum == (
            q1_city_row.figures.required_minimum if q1_city_row else None
        )


@pytest.mark.parametrize("period_key", ["2026", "2026-Q1", "2026-02"])
@pytest.mark.parametrize(("policy", "params"), [("danang_2223", None), ("fixed_total", {"total": 10})])
def test_no_minimum_on_a_summary_filtered_to_one_field(
    db_session: Session, build: Builder, period_key: str, policy: str, params: dict[str, int] | None
) -> None:
    # The minimum is an agency's: rows grouped by field never had one, nor the total of a field-filtered
    # summary; the rows of a field-filtered summary follow, for a year as for a month or a quarter
    # (a year once got the formula on the field's dossiers alone, a quarter a share of the agency's).
    s = _two_agencies_in_2026(build)
    period = Period.parse(period_key)
    for agency_id in (None, s["a"].id):
        summary = service.summarise(
            db_session,
            period=period,
            field_id=s["f1"].id,
            agency_id=agency_id,
            policy=policy,
            policy_params=params,
        )
        assert summary.rows and all(r.key.agency_id is not None for r in summary.rows)
        assert [r.figures.required_minimum for r in summary.rows] == [None] * len(summary.rows)
        assert [r.figures.attainment for r in summary.rows] == [None] * len(summary.rows)
        assert summary.total.required_minimum is None
    # Without the field filter the same agency rows carry their minimum.
    unfiltered = service.summarise(db_session, period=period, policy=policy, policy_params=params)
    a_row = next(r for r in unfiltered.rows if r.agency_code == "A")
    assert a_row.figures.required_minimum is not None
