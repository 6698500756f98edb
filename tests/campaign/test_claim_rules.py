"""Eligibility is checked again when a target is claimed (both databases): a survey stored after the
draw, for the target's dossier or for its phone within the cool-off, closes the target and draws a
replacement instead of calling."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from callcenter.campaign import service
from callcenter.campaign.models import CallTarget, CampaignAgencyTarget, TargetState
from callcenter.ivr.models import SurveyResponse
from tests.campaign.conftest import MONDAY_9, World, make_campaign, phone_for

COOLOFF_DAYS = 30  # not the default (90): the campaign's own cool-off is the one applied


def targets(world: World, campaign_id: int) -> dict[int, CallTarget]:
    """The campaign's targets by dossier id, as the database has them now."""
    rows = world.session.scalars(
        select(CallTarget)
        .where(CallTarget.campaign_id == campaign_id)
        .order_by(CallTarget.id)
        .execution_options(populate_existing=True)
    )
    return {t.dossier_id: t for t in rows}


def store_completed_survey(
    world: World, *, dossier_id: int, phone_hash: str | None, completed_at: datetime
) -> None:
    """A completed survey that reaches the database after the draw (a web answer, a late import)."""
    world.session.add(
        SurveyResponse(
            channel="web",
            dossier_id=dossier_id,
            agency_id=world.agencies["SO-TP"].id,
            questionnaire_version="v1",
            phone_hash=phone_hash,
            status="completed",
            satisfied=True,
            started_at=completed_at - timedelta(minutes=5),
            completed_at=completed_at,
        )
    )
    world.session.flush()


def test_a_dossier_surveyed_after_the_draw_is_skipped_and_replaced(world: World) -> None:
    ids = world.add_dossiers("SO-TP", 3)
    campaign = make_campaign(world, total=2, caps={"cooloff_days": COOLOFF_DAYS})
    drawn = targets(world, campaign.id)
    assert len(drawn) == 2
    (spare,) = set(ids) - set(drawn)
    surveyed, other = sorted(drawn)
    # Its survey was answered long ago (outside the phone's cool-off): only the dossier rule applies.
    store_completed_survey(
        world,
        dossier_id=surveyed,
        phone_hash=drawn[surveyed].phone_hash,
        completed_at=MONDAY_9 - timedelta(days=400),
    )

    due = service.claim_due_targets(world.session, now=MONDAY_9, limit=5)

    assert [d.dossier_id for d in due] == [other]
    after = targets(world, campaign.id)
    assert after[surveyed].state == TargetState.SKIPPED and after[surveyed].next_attempt_at is None
    assert after[other].state == TargetState.IN_CALL
    replacement = after[spare]
    assert (replacement.state, replacement.wave, replacement.next_attempt_at) == (
        TargetState.QUEUED,
        1,
        MONDAY_9,
    )
    row = world.session.scalars(select(CampaignAgencyTarget).execution_options(populate_existing=True)).one()
    assert row.drawn == 3


@pytest.mark.parametrize(
    ("ago", "skipped"),
    [
        (timedelta(days=1), True),
        (timedelta(days=COOLOFF_DAYS) - timedelta(minutes=1), True),  # just inside
        (timedelta(days=COOLOFF_DAYS), True),  # the cool-off's last instant
        (timedelta(days=COOLOFF_DAYS) + timedelta(minutes=1), False),  # just outside
        (timedelta(days=COOLOFF_DAYS + 1), False),
    ],
    ids=["1d", "inside-1min", "exactly", "outside+1min", "outside+1d"],
)
def test_a_phone_surveyed_after_the_draw_for_another_dossier_waits_out_its_cooloff(
    world: World, ago: timedelta, skipped: bool
) -> None:
    ids = world.add_dossiers("SO-TP", 3)
    campaign = make_campaign(world, total=2, caps={"cooloff_days": COOLOFF_DAYS})
    drawn = targets(world, campaign.id)
    (spare,) = set(ids) - set(drawn)
    surveyed, other = sorted(drawn)
    # The same citizen filed another dossier elsewhere and answered its survey.
    e164 = phone_for(ids.index(surveyed))
    assert world.cipher.phone_hash(e164) == drawn[surveyed].phone_hash
    (elsewhere,) = world.add_dossiers("SO-XD", 1, phone=lambda _: e164)
    store_completed_survey(
        world, dossier_id=elsewhere, phone_hash=drawn[surveyed].phone_hash, completed_at=MONDAY_9 - ago
    )

    due = service.claim_due_targets(world.session, now=MONDAY_9, limit=5)

    after = targets(world, campaign.id)
    if skipped:
        assert [d.dossier_id for d in due] == [other]
        assert after[surveyed].state == TargetState.SKIPPED
        assert after[spare].state == TargetState.QUEUED and after[spare].wave == 1  # the replacement
    else:
        assert sorted(d.dossier_id for d in due) == [surveyed, other]
        assert after[surveyed].state == TargetState.IN_CALL
        assert spare not in after  # nothing to replace
