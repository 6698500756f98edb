"""Creating a campaign: targets per agency, eligibility, the stratified reproducible draw, bad input."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from callcenter.campaign import service
from callcenter.campaign.models import (
    CallTarget,
    Campaign,
    CampaignAgencyTarget,
    CampaignEvent,
    Holiday,
    Stratum,
)
from callcenter.campaign.schemas import CampaignSpec, parse_spec
from callcenter.core.errors import ValidationError
from callcenter.core.models import OptOut
from callcenter.ivr.models import SurveyResponse
from tests.campaign.conftest import MONDAY_9, World, phone_for

NOW = MONDAY_9 - timedelta(days=3)  # created on the Friday before


def spec(**over: Any) -> CampaignSpec:
    base: dict[str, Any] = {
        "name": "Quý IV/2026",
        "returned_from": "2026-10-01",
        "returned_to": "2026-10-31",
        "agencies": ["SO-TP", "SO-XD"],
        "starts_at": MONDAY_9.isoformat(),
        "ends_at": (MONDAY_9 + timedelta(days=30)).isoformat(),
        "seed": 42,
    }
    base.update(over)
    return parse_spec(base)


def targets_of(world: World, campaign_id: int) -> list[CallTarget]:
    return list(
        world.session.scalars(
            select(CallTarget).where(CallTarget.campaign_id == campaign_id).order_by(CallTarget.id)
        )
    )


def agency_row(world: World, campaign_id: int, code: str) -> CampaignAgencyTarget:
    row = world.session.scalar(
        select(CampaignAgencyTarget).where(
            CampaignAgencyTarget.campaign_id == campaign_id,
            CampaignAgencyTarget.agency_id == world.agencies[code].id,
        )
    )
    assert row is not None
    return row


def test_targets_follow_the_policy_and_lists_are_drawn(world: World) -> None:
    world.add_dossiers("SO-TP", 400, late_every=10)  # 40 late
    world.add_dossiers("SO-XD", 120)
    campaign = service.create_campaign(world.session, spec=spec(), actor="op1", now=NOW)
    assert campaign.status == "draft"
    tp = agency_row(world, campaign.id, "SO-TP")
    assert (tp.population, tp.population_late_overdue, tp.eligible, tp.eligible_late_overdue) == (
        400,
        40,
        400,
        40,
    )
    assert tp.target == 400 * 10000 // (10000 + 400 * 49)  # floor(400 / (1 + 400·0.07²)) = 135
    assert tp.drawn == tp.target and tp.exhausted_at is None
    targets = [t for t in targets_of(world, campaign.id) if t.agency_id == world.agencies["SO-TP"].id]
    assert len(targets) == tp.target
    late = [t for t in targets if t.stratum == Stratum.LATE_OVERDUE.value]
    # the late stratum is over-sampled: all 40 late dossiers (share 0.5 of 135 wants 68, only 40 exist)
    assert len(late) == 40
    # late ones come first in the calling order
    assert max(t.draw_rank for t in late) < min(t.draw_rank for t in targets if t not in late)
    assert all(t.state == "queued" and t.next_attempt_at == MONDAY_9 for t in targets)
    events = world.session.scalars(
        select(CampaignEvent).where(CampaignEvent.campaign_id == campaign.id)
    ).all()
    assert [(e.from_status, e.to_status, e.actor) for e in events] == [(None, "draft", "op1")]


def test_draw_is_reproducible_from_the_seed(world: World) -> None:
    world.add_dossiers("SO-TP", 500, late_every=7)
    first = service.create_campaign(world.session, spec=spec(agencies=["SO-TP"]), actor="op", now=NOW)
    again = service.create_campaign(world.session, spec=spec(agencies=["SO-TP"]), actor="op", now=NOW)
    other = service.create_campaign(world.session, spec=spec(agencies=["SO-TP"], seed=7), actor="op", now=NOW)
    ids = [[t.dossier_id for t in targets_of(world, c.id)] for c in (first, again, other)]
    assert ids[0] == ids[1]
    assert set(ids[0]) != set(ids[2])
    assert first.seed == 42


def test_seed_is_generated_and_stored_when_not_given(world: World) -> None:
    world.add_dossiers("SO-TP", 10)
    campaign = service.create_campaign(
        world.session, spec=spec(agencies=["SO-TP"], seed=None), actor="op", now=NOW
    )
    assert 0 <= campaign.seed < 2**62


def test_only_eligible_dossiers_are_drawn(world: World) -> None:
    session = world.session
    ok = world.add_dossiers("SO-TP", 5)
    opted = world.add_dossiers("SO-TP", 1)
    surveyed = world.add_dossiers("SO-TP", 1)
    recent_phone = world.add_dossiers("SO-TP", 1)
    world.add_dossiers("SO-TP", 1, status="received")  # result not returned yet
    world.add_dossiers(
        "SO-TP", 1, returned_at=datetime(2026, 9, 30, 16, 59, tzinfo=UTC)
    )  # 23:59 on 30/9 local
    edge = world.add_dossiers(
        "SO-TP", 1, returned_at=datetime(2026, 9, 30, 17, 0, tzinfo=UTC)
    )  # 00:00 on 1/10
    world.add_dossiers("SO-TP", 1, phone_kind="invalid")
    session.add(
        OptOut(phone_hash=world.cipher.phone_hash(phone_for(5)), source="operator_list", created_at=NOW)
    )
    agency_id = world.agencies["SO-TP"].id
    session.add(
        SurveyResponse(
            channel="web",
            dossier_id=surveyed[0],
            agency_id=agency_id,
            questionnaire_version="v1",
            status="completed",
            started_at=NOW - timedelta(days=400),
            completed_at=NOW - timedelta(days=400),
        )
    )
    # the phone of `recent_phone` answered a survey for another dossier 10 days ago (cool-off 90 days)
    session.add(
        SurveyResponse(
            channel="call",
            dossier_id=None,
            agency_id=agency_id,
            questionnaire_version="v1",
            phone_hash=world.cipher.phone_hash(phone_for(7)),
            status="completed",
            started_at=NOW - timedelta(days=10),
            completed_at=NOW - timedelta(days=10),
        )
    )
    session.flush()
    campaign = service.create_campaign(
        session,
        spec=spec(agencies=["SO-TP"], policy="fixed_total", policy_params={"total": 100}),
        actor="op",
        now=NOW,
    )
    drawn = {t.dossier_id for t in targets_of(world, campaign.id)}
    assert drawn == set(ok) | set(edge)
    row = agency_row(world, campaign.id, "SO-TP")
    assert row.population == 10  # every returned dossier of the period counts towards N, callable or not
    assert row.eligible == 6
    assert row.target == 10 and row.drawn == 6 and row.exhausted_at is not None  # cannot reach 10
    assert opted[0] not in drawn and recent_phone[0] not in drawn


@pytest.mark.parametrize("cooloff_days", [None, 30], ids=["default-90", "campaign-30"])
def test_the_phone_cooloff_bounds_the_draw_to_the_day(world: World, cooloff_days: int | None) -> None:
    """A phone surveyed (cool-off − 1) days ago, or exactly a cool-off ago, is not drawn; one surveyed
    (cool-off + 1) days ago is."""
    days = cooloff_days or 90
    ids = world.add_dossiers("SO-TP", 4)  # phone_for(0..3)
    agency_id = world.agencies["SO-TP"].id
    for index, ago in enumerate((timedelta(days=days - 1), timedelta(days=days), timedelta(days=days + 1))):
        world.session.add(
            SurveyResponse(
                channel="call",
                dossier_id=None,  # answered for another dossier of the same citizen
                agency_id=agency_id,
                questionnaire_version="v1",
                phone_hash=world.cipher.phone_hash(phone_for(index)),
                status="completed",
                started_at=NOW - ago,
                completed_at=NOW - ago,
            )
        )
    world.session.flush()
    rules = {} if cooloff_days is None else {"caps": {"cooloff_days": cooloff_days}}
    campaign = service.create_campaign(
        world.session,
        spec=spec(agencies=["SO-TP"], policy="fixed_total", policy_params={"total": 4}, calling_rules=rules),
        actor="op",
        now=NOW,
    )
    drawn = {t.dossier_id for t in targets_of(world, campaign.id)}
    assert drawn == {ids[2], ids[3]}
    assert agency_row(world, campaign.id, "SO-TP").eligible == 2


def test_one_target_per_phone_per_campaign(world: World) -> None:
    world.add_dossiers("SO-TP", 30, phone=lambda i: phone_for(i % 10))  # 10 phones, 3 dossiers each
    campaign = service.create_campaign(
        world.session,
        spec=spec(agencies=["SO-TP"], policy="fixed_total", policy_params={"total": 30}),
        actor="op",
        now=NOW,
    )
    targets = targets_of(world, campaign.id)
    assert len(targets) == 10 == len({t.phone_hash for t in targets})


def test_organisation_units_use_the_repeated_submitter_rule(world: World) -> None:
    # 5 agencies file 8 dossiers each in October: one survey per submitter per half-year → 5
    world.add_dossiers("VP-UB", 40, phone=lambda i: phone_for(9000 + i % 5))
    campaign = service.create_campaign(world.session, spec=spec(agencies=["VP-UB"]), actor="op", now=NOW)
    assert agency_row(world, campaign.id, "VP-UB").target == 5


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"agencies": ["SO-TP", "NOPE"]}, "agencies"),
        ({"fields": ["NOPE"]}, "fields"),
        ({"returned_to": "2026-09-01"}, "returned_to"),
        ({"ends_at": (MONDAY_9 - timedelta(hours=1)).isoformat()}, "ends_at"),
        ({"starts_at": "2026-11-01T08:00:00+07:00", "ends_at": "2026-11-02T08:00:00+07:00"}, "ends_at"),
        ({"policy": "guess"}, "policy"),
        ({"policy_params": {"rounding": "sideways"}}, "policy_params.rounding"),
        ({"policy": "seed003"}, "policy"),  # 400 dossiers is fine, but SO-XD has 2,000 → not applicable
        (
            {
                "calling_rules": {"windows": [{"weekdays": [6], "start": "08:00", "end": "11:00"}]},
                "ends_at": (MONDAY_9 + timedelta(days=4)).isoformat(),
            },
            "calling_rules.windows",
        ),
        ({"calling_rules": {"retry": {"max_attempts_total": 0}}}, "calling_rules.retry.max_attempts_total"),
    ],
)
def test_bad_input_names_the_field_and_creates_nothing(
    world: World, over: dict[str, Any], field: str
) -> None:
    world.add_dossiers("SO-TP", 400)
    world.add_dossiers("SO-XD", 2000)
    with pytest.raises(ValidationError) as err:
        service.create_campaign(world.session, spec=spec(**over), actor="op", now=NOW)
    assert err.value.field == field
    assert world.session.scalar(select(func.count()).select_from(Campaign)) == 0
    assert world.session.scalar(select(func.count()).select_from(CallTarget)) == 0
    assert world.session.scalar(select(func.count()).select_from(Holiday)) == 0


@pytest.mark.parametrize(
    ("over", "field", "message"),
    [
        ({"agencies": ["SO-TP", "NOPE", "SO-XD"]}, "agencies", "unknown agency code(s): NOPE"),
        ({"fields": ["HO-TICH", "KHONG-CO"]}, "fields", "unknown field code(s): KHONG-CO"),
    ],
    ids=["agency", "field"],
)
def test_an_unknown_code_is_named_in_the_message(
    world: World, over: dict[str, Any], field: str, message: str
) -> None:
    world.add_dossiers("SO-TP", 10)
    with pytest.raises(ValidationError) as err:
        service.create_campaign(world.session, spec=spec(**over), actor="op", now=NOW)
    assert err.value.field == field
    assert err.value.reason == message  # only the unknown code, so the operator sees what to fix
    assert str(err.value) == f"field '{field}': {message}"


def test_spec_errors_name_the_field() -> None:
    with pytest.raises(ValidationError) as err:
        parse_spec(
            {
                "name": "x",
                "returned_from": "2026-10-01",
                "returned_to": "2026-10-31",
                "starts_at": "2026-11-23T08:00:00",
                "ends_at": "2026-11-30T08:00:00+07:00",
            }
        )
    assert err.value.field == "campaign.starts_at"  # a naive time is ambiguous


def test_holidays_are_seeded_for_the_campaign_years(world: World) -> None:
    from callcenter.campaign.calendar_store import list_holidays

    world.add_dossiers("SO-TP", 5)
    service.create_campaign(world.session, spec=spec(agencies=["SO-TP"]), actor="op", now=NOW)
    days = {h.day for h in list_holidays(world.session, year=2026)}
    assert date(2026, 2, 17) in days and date(2026, 9, 2) in days


def test_a_campaign_that_can_call_nobody_is_refused_and_leaves_nothing(world: World) -> None:
    """Dossiers returned after the period chosen, or a year with no data: refused, not "running"."""
    world.add_dossiers("SO-TP", 20)  # returned in October 2026 (the world's data)
    later = spec(agencies=["SO-TP"], returned_from="2027-08-01", returned_to="2027-12-31")
    with pytest.raises(ValidationError) as err:
        service.create_campaign(world.session, spec=later, actor="op", now=NOW)
    assert err.value.field == "returned_from"
    assert str(err.value).startswith(
        "field 'returned_from': nothing to call: 0 dossier(s) returned between 2027-08-01 and 2027-12-31"
    )
    assert world.session.scalar(select(func.count()).select_from(Campaign)) == 0
    assert world.session.scalar(select(func.count()).select_from(Holiday)) == 0


def test_the_holiday_calendar_refuses_years_it_does_not_know(world: World) -> None:
    from callcenter.campaign.calendar_store import add_holiday, list_holidays

    with pytest.raises(ValidationError, match="year 1 is outside 1900–2100"):
        add_holiday(world.session, day=date(1, 1, 1), name="x")
    with pytest.raises(ValidationError, match="year 0 is outside 1900–2100"):
        list_holidays(world.session, year=0)
    with pytest.raises(ValidationError, match="longer than 128 characters"):
        add_holiday(world.session, day=date(2027, 2, 12), name="x" * 129)
    assert world.session.scalar(select(func.count()).select_from(Holiday)) == 0
