"""The dialer's contract on both databases: claim, record, release, caps, replacement draws, lifecycle."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import bindparam, select, update

from callcenter.campaign import service
from callcenter.campaign.errors import InvalidTransition
from callcenter.campaign.models import (
    CallTarget,
    CampaignAgencyTarget,
    CampaignEvent,
    PhoneCallGuard,
    TargetState,
)
from callcenter.core.clock import VN_TZ, ManualClock
from callcenter.core.models import OptOut
from callcenter.core.outcomes import CallOutcome, SurveyOutcome
from callcenter.intake.models import Dossier
from tests.campaign.conftest import MONDAY_9, World, make_campaign, phone_for
from tests.statements import sent_statements

BUSY = (CallOutcome.BUSY, SurveyOutcome.NONE)
DONE = (CallOutcome.ANSWERED, SurveyOutcome.COMPLETED)


def target(world: World, target_id: int) -> CallTarget:
    row = world.session.get(CallTarget, target_id, populate_existing=True)
    assert row is not None
    return row


def test_claim_moves_due_targets_to_in_call(world: World) -> None:
    world.add_dossiers("SO-TP", 5)
    campaign = make_campaign(world, total=5)
    due = service.claim_due_targets(world.session, now=MONDAY_9, limit=3)
    assert len(due) == 3
    assert {d.campaign_id for d in due} == {campaign.id}
    assert all(target(world, d.target_id).state == TargetState.IN_CALL for d in due)
    again = service.claim_due_targets(world.session, now=MONDAY_9, limit=10)
    assert len(again) == 2  # the three in call are not handed out twice
    assert service.claim_due_targets(world.session, now=MONDAY_9, limit=10) == []


def test_nothing_is_claimed_outside_the_window_and_targets_move_to_the_next_one(world: World) -> None:
    world.add_dossiers("SO-TP", 2)
    make_campaign(world, total=2)
    lunch = MONDAY_9.replace(hour=12)
    assert service.claim_due_targets(world.session, now=lunch, limit=10) == []
    rows = world.session.scalars(select(CallTarget).execution_options(populate_existing=True)).all()
    assert {r.next_attempt_at for r in rows} == {MONDAY_9.replace(hour=13, minute=30)}
    assert (
        len(service.claim_due_targets(world.session, now=MONDAY_9.replace(hour=13, minute=30), limit=10)) == 2
    )


def test_utc_evening_is_not_a_local_calling_hour(world: World) -> None:
    world.add_dossiers("SO-TP", 1)
    make_campaign(world, total=1)
    # 02:00 UTC Tuesday is 09:00 local: open. 14:00 UTC Monday is 21:00 local: closed.
    from datetime import UTC

    assert (
        service.claim_due_targets(world.session, now=datetime(2026, 11, 23, 14, 0, tzinfo=UTC), limit=1) == []
    )
    assert (
        len(service.claim_due_targets(world.session, now=datetime(2026, 11, 24, 2, 0, tzinfo=UTC), limit=1))
        == 1
    )


def test_paused_and_draft_campaigns_are_not_called(world: World) -> None:
    world.add_dossiers("SO-TP", 2)
    draft = make_campaign(world, total=2, start=False)
    assert service.claim_due_targets(world.session, now=MONDAY_9, limit=10) == []
    service.start_campaign(world.session, campaign_id=draft.id, actor="op", now=MONDAY_9)
    service.pause_campaign(world.session, campaign_id=draft.id, actor="op", now=MONDAY_9)
    assert service.claim_due_targets(world.session, now=MONDAY_9, limit=10) == []
    service.resume_campaign(world.session, campaign_id=draft.id, actor="op2", now=MONDAY_9)
    assert len(service.claim_due_targets(world.session, now=MONDAY_9, limit=10)) == 2


def test_busy_is_retried_later_and_completed_is_final(world: World) -> None:
    world.add_dossiers("SO-TP", 1)
    make_campaign(world, total=1)
    clock = ManualClock(MONDAY_9)
    [due] = service.claim_due_targets(world.session, now=clock.now(), limit=1)
    clock.advance(timedelta(minutes=1))
    state = service.record_attempt_result(
        world.session,
        target_id=due.target_id,
        outcome=CallOutcome.BUSY,
        survey=SurveyOutcome.NONE,
        now=clock.now(),
    )
    assert state == TargetState.QUEUED
    row = target(world, due.target_id)
    assert row.next_attempt_at == clock.now() + timedelta(minutes=20)
    assert row.attempts == 1 and row.attempts_by_outcome == {"busy": 1} and row.last_outcome == "busy"
    # not due yet
    assert service.claim_due_targets(world.session, now=clock.now(), limit=1) == []
    clock.advance(timedelta(minutes=20))
    [again] = service.claim_due_targets(world.session, now=clock.now(), limit=1)
    state = service.record_attempt_result(
        world.session,
        target_id=again.target_id,
        outcome=CallOutcome.ANSWERED,
        survey=SurveyOutcome.COMPLETED,
        now=clock.now(),
    )
    assert state == TargetState.COMPLETED
    assert target(world, due.target_id).completed_at == clock.now()


def test_record_is_idempotent(world: World) -> None:
    world.add_dossiers("SO-TP", 2)
    make_campaign(world, total=2)
    [due, _] = service.claim_due_targets(world.session, now=MONDAY_9, limit=2)
    first = service.record_attempt_result(
        world.session,
        target_id=due.target_id,
        outcome=CallOutcome.ANSWERED,
        survey=SurveyOutcome.COMPLETED,
        now=MONDAY_9,
    )
    second = service.record_attempt_result(
        world.session,
        target_id=due.target_id,
        outcome=CallOutcome.BUSY,
        survey=SurveyOutcome.NONE,
        now=MONDAY_9,
    )
    assert first == second == TargetState.COMPLETED
    assert target(world, due.target_id).attempts == 1


def test_one_call_at_a_time_per_phone_across_campaigns(world: World) -> None:
    world.add_dossiers("SO-TP", 1, phone=lambda i: phone_for(777))
    world.add_dossiers("SO-XD", 1, phone=lambda i: phone_for(777))  # same citizen, another agency
    make_campaign(world, total=1, agencies=("SO-TP",))
    make_campaign(world, total=1, agencies=("SO-XD",))
    due = service.claim_due_targets(world.session, now=MONDAY_9, limit=10)
    assert len(due) == 1
    guard = world.session.get(PhoneCallGuard, due[0].phone_hash, populate_existing=True)
    assert guard is not None and guard.active_target_id == due[0].target_id
    waiting = world.session.scalars(
        select(CallTarget).where(CallTarget.state == "queued").execution_options(populate_existing=True)
    ).one()
    assert waiting.next_attempt_at == MONDAY_9 + timedelta(minutes=10)  # rechecked later, not dropped
    service.record_attempt_result(
        world.session,
        target_id=due[0].target_id,
        outcome=CallOutcome.NO_ANSWER,
        survey=SurveyOutcome.NONE,
        now=MONDAY_9 + timedelta(minutes=1),
    )
    assert len(service.claim_due_targets(world.session, now=MONDAY_9 + timedelta(minutes=10), limit=10)) == 1


def test_daily_cap_per_phone_then_next_day(world: World) -> None:
    world.add_dossiers("SO-TP", 1)
    make_campaign(
        world,
        total=1,
        caps={"max_attempts_per_phone_per_day": 2},
        retry={"rules": {"busy": {"delay_minutes": 5, "max_attempts": 9}}},
    )
    clock = ManualClock(MONDAY_9)
    for _ in range(2):
        [due] = service.claim_due_targets(world.session, now=clock.now(), limit=1)
        service.record_attempt_result(
            world.session, target_id=due.target_id, outcome=BUSY[0], survey=BUSY[1], now=clock.now()
        )
        clock.advance(timedelta(minutes=5))
    assert service.claim_due_targets(world.session, now=clock.now(), limit=1) == []
    row = target(world, due.target_id)
    assert row.state == TargetState.QUEUED
    assert row.next_attempt_at == datetime(2026, 11, 24, 8, 0, tzinfo=VN_TZ)  # Tuesday morning
    assert len(service.claim_due_targets(world.session, now=row.next_attempt_at, limit=1)) == 1


def test_a_claim_holds_its_phones_together_and_counts_each_once(world: World) -> None:
    """Several phones in one claim: on PostgreSQL one statement holds them all; a phone in another
    call and one at today's cap are refused as one by one and their targets moved as then."""
    world.add_dossiers("SO-TP", 6)
    make_campaign(world, total=6, caps={"max_attempts_per_phone_per_day": 2})
    rows = world.session.scalars(select(CallTarget).order_by(CallTarget.id)).all()
    in_call, capped = rows[4], rows[5]
    world.session.add_all(
        [
            PhoneCallGuard(phone_hash=in_call.phone_hash, active_target_id=424242, day=MONDAY_9.date(),
                           attempts_today=1, updated_at=MONDAY_9),
            PhoneCallGuard(phone_hash=capped.phone_hash, active_target_id=None, day=MONDAY_9.date(),
                           attempts_today=2, updated_at=MONDAY_9),
            # used yesterday: today's count starts again at one
            PhoneCallGuard(phone_hash=rows[0].phone_hash, active_target_id=None,
                           day=MONDAY_9.date() - timedelta(days=1), attempts_today=2, updated_at=MONDAY_9),
        ]
    )  # fmt: skip
    world.session.flush()
    engine = world.session.connection().engine
    with sent_statements(engine) as sent:
        due = service.claim_due_targets(world.session, now=MONDAY_9, limit=10)
    statements = [s.sql for s in sent if s.sql.startswith("UPDATE phone_call_guards")]
    assert [d.target_id for d in due] == [r.id for r in rows[:4]]
    assert len(statements) == (1 if engine.dialect.name == "postgresql" else 6)
    guards = {
        g.phone_hash: g
        for g in world.session.scalars(select(PhoneCallGuard).execution_options(populate_existing=True))
    }
    for d in due:
        assert guards[d.phone_hash].active_target_id == d.target_id
        assert (guards[d.phone_hash].day, guards[d.phone_hash].attempts_today) == (MONDAY_9.date(), 1)
    assert (guards[in_call.phone_hash].active_target_id, guards[in_call.phone_hash].attempts_today) == (
        424242,
        1,
    )
    assert (guards[capped.phone_hash].active_target_id, guards[capped.phone_hash].attempts_today) == (None, 2)
    assert target(world, in_call.id).next_attempt_at == MONDAY_9 + timedelta(minutes=10)  # rechecked soon
    assert target(world, capped.id).next_attempt_at == datetime(2026, 11, 24, 8, 0, tzinfo=VN_TZ)  # tomorrow
    assert {target(world, r.id).state for r in (in_call, capped)} == {TargetState.QUEUED}


def test_release_does_not_count_an_attempt(world: World) -> None:
    world.add_dossiers("SO-TP", 1)
    make_campaign(world, total=1)
    [due] = service.claim_due_targets(world.session, now=MONDAY_9, limit=1)
    state = service.release_target(
        world.session, target_id=due.target_id, now=MONDAY_9, retry_at=MONDAY_9 + timedelta(seconds=30)
    )
    assert state == TargetState.QUEUED
    row = target(world, due.target_id)
    assert row.attempts == 0 and row.next_attempt_at == MONDAY_9 + timedelta(seconds=30)
    guard = world.session.get(PhoneCallGuard, due.phone_hash, populate_existing=True)
    assert guard is not None and guard.active_target_id is None and guard.attempts_today == 0
    # releasing twice changes nothing
    assert service.release_target(
        world.session, target_id=due.target_id, now=MONDAY_9, retry_at=MONDAY_9
    ) == (TargetState.QUEUED)


# A condition that changes no row unless a real dossier id is given (the dialer's is its attempt's
# compare-and-set to FINISHED).
_TOUCH_DOSSIER = (
    update(Dossier)
    .where(Dossier.id == bindparam("touch_id"))
    .values(updated_at=bindparam("touch_now"))
    .returning(Dossier.id)
)


def test_a_result_with_a_condition_is_recorded_only_if_the_condition_changed_a_row(world: World) -> None:
    world.add_dossiers("SO-TP", 2)
    make_campaign(world, total=2)
    due = service.claim_due_targets(world.session, now=MONDAY_9, limit=1)[0]

    def record(touch_id: int) -> TargetState | None:
        return service.record_attempt_result_if(
            world.session,
            only_if=_TOUCH_DOSSIER,
            only_if_params={"touch_id": touch_id, "touch_now": MONDAY_9},
            target_id=due.target_id,
            outcome=DONE[0],
            survey=DONE[1],
            now=MONDAY_9,
        )

    assert record(-1) is None  # the condition lost: nothing recorded, the phone still held
    row = target(world, due.target_id)
    assert (row.state, row.attempts) == (TargetState.IN_CALL, 0)
    guard = world.session.get(PhoneCallGuard, due.phone_hash, populate_existing=True)
    assert guard is not None and guard.active_target_id == due.target_id
    assert record(due.dossier_id) == TargetState.COMPLETED
    row = target(world, due.target_id)
    assert (row.state, row.attempts) == (TargetState.COMPLETED, 1)
    guard = world.session.get(PhoneCallGuard, due.phone_hash, populate_existing=True)
    assert guard is not None and guard.active_target_id is None
    # Already recorded: the condition still runs (it won), the target is left as it is.
    assert record(due.dossier_id) == TargetState.COMPLETED
    assert target(world, due.target_id).attempts == 1
    assert record(-1) is None  # and a condition that lost still says so


def test_exhausted_target_is_replaced_by_a_new_wave(world: World) -> None:
    world.add_dossiers("SO-TP", 4)
    campaign = make_campaign(world, total=2)
    due = service.claim_due_targets(world.session, now=MONDAY_9, limit=2)
    state = service.record_attempt_result(
        world.session,
        target_id=due[0].target_id,
        outcome=CallOutcome.INVALID_NUMBER,
        survey=SurveyOutcome.NONE,
        now=MONDAY_9,
    )
    assert state == TargetState.EXHAUSTED
    targets = world.session.scalars(select(CallTarget).where(CallTarget.campaign_id == campaign.id)).all()
    assert len(targets) == 3
    assert [t.wave for t in targets if t.state == "queued"] == [1]
    row = world.session.scalars(select(CampaignAgencyTarget)).one()
    assert row.drawn == 3 and row.exhausted_at is None


def test_eligible_exhausted_is_recorded_and_campaign_completes(world: World) -> None:
    world.add_dossiers("SO-TP", 2)
    campaign = make_campaign(world, total=2)
    due = service.claim_due_targets(world.session, now=MONDAY_9, limit=2)
    service.record_attempt_result(
        world.session, target_id=due[0].target_id, outcome=DONE[0], survey=DONE[1], now=MONDAY_9
    )
    service.record_attempt_result(
        world.session,
        target_id=due[1].target_id,
        outcome=CallOutcome.INVALID_NUMBER,
        survey=SurveyOutcome.NONE,
        now=MONDAY_9,
    )
    row = world.session.scalars(select(CampaignAgencyTarget).execution_options(populate_existing=True)).one()
    assert row.exhausted_at == MONDAY_9
    world.session.refresh(campaign)
    assert campaign.status == "completed"
    events = world.session.scalars(
        select(CampaignEvent).where(CampaignEvent.campaign_id == campaign.id)
    ).all()
    assert events[-1].actor == "system" and events[-1].to_status == "completed"


def test_opt_out_closes_every_campaign_for_that_phone(world: World) -> None:
    world.add_dossiers("SO-TP", 1, phone=lambda i: phone_for(555))
    world.add_dossiers("SO-XD", 1, phone=lambda i: phone_for(555))
    make_campaign(world, total=1, agencies=("SO-TP",))
    other = make_campaign(world, total=1, agencies=("SO-XD",))
    [due] = service.claim_due_targets(world.session, now=MONDAY_9, limit=5)
    world.add_dossiers("SO-XD", 1, phone=lambda i: phone_for(556))  # someone else the other list can call
    state = service.record_attempt_result(
        world.session,
        target_id=due.target_id,
        outcome=CallOutcome.ANSWERED,
        survey=SurveyOutcome.OPTED_OUT,
        now=MONDAY_9,
    )
    assert state == TargetState.OPTED_OUT
    rest = world.session.scalars(
        select(CallTarget).where(CallTarget.campaign_id == other.id).execution_options(populate_existing=True)
    ).all()
    assert [t.state for t in rest] == ["opted_out", "queued"]  # closed, and replaced in the same step
    assert rest[1].phone_hash == world.cipher.phone_hash(phone_for(556)) and rest[1].wave == 1


def test_phone_on_the_opt_out_list_is_never_claimed(world: World) -> None:
    world.add_dossiers("SO-TP", 2)
    make_campaign(world, total=2)
    world.session.add(
        OptOut(phone_hash=world.cipher.phone_hash(phone_for(0)), source="operator_list", created_at=MONDAY_9)
    )
    world.session.flush()
    due = service.claim_due_targets(world.session, now=MONDAY_9, limit=5)
    assert [d.phone_hash for d in due] == [world.cipher.phone_hash(phone_for(1))]


def _correct_phone(world: World, dossier_id: int, phone: str) -> None:
    """What a later import does when the one-stop system corrects a dossier's phone number."""
    dossier = world.session.get(Dossier, dossier_id)
    assert dossier is not None
    dossier.phone_enc = world.cipher.encrypt(phone)
    dossier.phone_hash = world.cipher.phone_hash(phone)
    world.session.flush()


def test_a_corrected_phone_is_the_one_checked_and_held(world: World) -> None:
    # Drawn with phones 0-2, each dossier's number is corrected afterwards: to an opted-out number, to
    # a number in another campaign's call right now, and to a fresh number.
    world.add_dossiers("SO-XD", 1, phone=lambda i: phone_for(701))
    other = make_campaign(world, total=1, agencies=("SO-XD",))
    [busy] = service.claim_due_targets(world.session, now=MONDAY_9, limit=5)
    assert (busy.campaign_id, busy.phone_hash) == (other.id, world.cipher.phone_hash(phone_for(701)))
    ids = world.add_dossiers("SO-TP", 3)
    campaign = make_campaign(world, total=3, agencies=("SO-TP",))
    world.session.add(
        OptOut(
            phone_hash=world.cipher.phone_hash(phone_for(700)), source="operator_list", created_at=MONDAY_9
        )
    )
    for dossier_id, phone in zip(ids, (700, 701, 702), strict=True):
        _correct_phone(world, dossier_id, phone_for(phone))

    due = service.claim_due_targets(world.session, now=MONDAY_9, limit=5)
    fresh = world.cipher.phone_hash(phone_for(702))
    assert [d.phone_hash for d in due if d.campaign_id == campaign.id] == [fresh]
    rows = {
        t.dossier_id: t
        for t in world.session.scalars(
            select(CallTarget)
            .where(CallTarget.campaign_id == campaign.id)
            .execution_options(populate_existing=True)
        )
    }
    assert rows[ids[0]].state == TargetState.OPTED_OUT  # the new number opted out: never called
    assert rows[ids[1]].state == TargetState.QUEUED and rows[ids[1]].next_attempt_at > MONDAY_9  # waits
    assert rows[ids[2]].state == TargetState.IN_CALL and rows[ids[2]].phone_hash == fresh
    guard = world.session.get(PhoneCallGuard, fresh, populate_existing=True)
    assert guard is not None and guard.active_target_id == rows[ids[2]].id
    # The result releases the number that was held, not the one of the draw.
    service.record_attempt_result(
        world.session,
        target_id=rows[ids[2]].id,
        outcome=CallOutcome.BUSY,
        survey=SurveyOutcome.NONE,
        now=MONDAY_9,
    )
    guard = world.session.get(PhoneCallGuard, fresh, populate_existing=True)
    assert guard is not None and guard.active_target_id is None


def test_a_phone_is_called_for_one_target_per_campaign(world: World) -> None:
    # Two targets of one campaign end up on one phone: two top-ups of different agencies drew it at
    # the same moment, or (as here) an import corrected one dossier's number to the other's.
    tp = world.add_dossiers("SO-TP", 1, phone=lambda i: phone_for(800))
    xd = world.add_dossiers("SO-XD", 1, phone=lambda i: phone_for(801))
    campaign = make_campaign(world, total=2, agencies=("SO-TP", "SO-XD"))
    targets = {
        t.dossier_id: t
        for t in world.session.scalars(select(CallTarget).where(CallTarget.campaign_id == campaign.id))
    }
    assert set(targets) == {tp[0], xd[0]}
    _correct_phone(world, xd[0], phone_for(800))
    due = service.claim_due_targets(world.session, now=MONDAY_9, limit=5)
    first = min(targets.values(), key=lambda t: t.id)  # drawn first: keeps the phone
    assert [d.target_id for d in due] == [first.id]
    other = max(targets.values(), key=lambda t: t.id)
    assert target(world, other.id).state == TargetState.SKIPPED


def test_nothing_after_the_campaign_end(world: World) -> None:
    world.add_dossiers("SO-TP", 1)
    make_campaign(world, total=1, days=1)  # ends Tuesday 09:00
    [due] = service.claim_due_targets(world.session, now=MONDAY_9.replace(hour=16), limit=1)
    # no answer → +3 h is Monday 19:00 → next window Tuesday 08:00 < end: queued
    state = service.record_attempt_result(
        world.session,
        target_id=due.target_id,
        outcome=CallOutcome.NO_ANSWER,
        survey=SurveyOutcome.NONE,
        now=MONDAY_9.replace(hour=16),
    )
    assert state == TargetState.QUEUED
    tuesday = MONDAY_9 + timedelta(days=1)
    assert service.claim_due_targets(world.session, now=tuesday, limit=1) == []  # ended at 09:00 sharp
    [again] = service.claim_due_targets(world.session, now=tuesday - timedelta(minutes=30), limit=1)
    # no answer again → +3 h is 11:30, lunch, 13:30: after the end, so the target is closed, not queued
    state = service.record_attempt_result(
        world.session,
        target_id=again.target_id,
        outcome=CallOutcome.NO_ANSWER,
        survey=SurveyOutcome.NONE,
        now=tuesday - timedelta(minutes=30),
    )
    assert state == TargetState.SKIPPED
    assert target(world, again.target_id).next_attempt_at is None


# --- lifecycle ---------------------------------------------------------------------------------------


def test_lifecycle_records_who_and_when(world: World) -> None:
    world.add_dossiers("SO-TP", 3)
    campaign = make_campaign(world, total=3, start=False)
    early = MONDAY_9 - timedelta(minutes=30)
    service.start_campaign(world.session, campaign_id=campaign.id, actor="lan", now=early)
    assert service.get_campaign(world.session, campaign_id=campaign.id).status == "scheduled"
    assert service.tick(world.session, now=MONDAY_9) == {"started": 1, "completed": 0}
    service.pause_campaign(
        world.session, campaign_id=campaign.id, actor="minh", now=MONDAY_9, note="trunk down"
    )
    service.resume_campaign(world.session, campaign_id=campaign.id, actor="minh", now=MONDAY_9)
    service.stop_campaign(world.session, campaign_id=campaign.id, actor="lan", now=MONDAY_9)
    events = service.campaign_events(world.session, campaign_id=campaign.id)
    assert [(e.from_status, e.to_status, e.actor) for e in events] == [
        (None, "draft", "op"),
        ("draft", "scheduled", "lan"),
        ("scheduled", "running", "system"),
        ("running", "paused", "minh"),
        ("paused", "running", "minh"),
        ("running", "cancelled", "lan"),
    ]
    assert events[3].note == "trunk down" and events[3].at == MONDAY_9
    states = world.session.scalars(
        select(CallTarget.state).where(CallTarget.campaign_id == campaign.id)
    ).all()
    assert set(states) == {"skipped"}  # nothing left to call once cancelled


@pytest.mark.parametrize(
    ("prepare", "action"),
    [
        ((), service.resume_campaign),
        ((), service.pause_campaign),
        (("start", "stop"), service.start_campaign),
        (("start", "stop"), service.resume_campaign),
        (("start",), service.resume_campaign),
    ],
)
def test_invalid_transitions_are_refused_clearly(world: World, prepare: tuple[str, ...], action: Any) -> None:
    world.add_dossiers("SO-TP", 1)
    campaign = make_campaign(world, total=1, start=False)
    for step in prepare:
        getattr(service, f"{step}_campaign")(world.session, campaign_id=campaign.id, actor="op", now=MONDAY_9)
    before = service.get_campaign(world.session, campaign_id=campaign.id).status
    with pytest.raises(InvalidTransition) as err:
        action(world.session, campaign_id=campaign.id, actor="op", now=MONDAY_9)
    assert f"campaign {campaign.id} is {before}" in str(err.value)
    assert service.get_campaign(world.session, campaign_id=campaign.id).status == before


def test_tick_completes_campaigns_past_their_end(world: World) -> None:
    world.add_dossiers("SO-TP", 2)
    campaign = make_campaign(world, total=2, days=1)
    assert service.tick(world.session, now=MONDAY_9 + timedelta(days=1)) == {"started": 0, "completed": 1}
    assert service.get_campaign(world.session, campaign_id=campaign.id).status == "completed"


def test_tick_completes_a_running_campaign_whose_last_calls_ended_together(world: World) -> None:
    # The last two results, recorded in two transactions at once, each saw the other target still in
    # a call: neither completed the campaign (simulated by ending the targets behind its back).
    world.add_dossiers("SO-TP", 2)
    campaign = make_campaign(world, total=2)
    service.claim_due_targets(world.session, now=MONDAY_9, limit=2)
    assert service.tick(world.session, now=MONDAY_9) == {"started": 0, "completed": 0}  # two in a call
    world.session.execute(update(CallTarget).values(state=TargetState.COMPLETED.value))
    assert service.get_campaign(world.session, campaign_id=campaign.id).status == "running"
    assert service.tick(world.session, now=MONDAY_9) == {"started": 0, "completed": 1}
    assert service.get_campaign(world.session, campaign_id=campaign.id).status == "completed"


def test_no_calls_on_an_operator_holiday(world: World) -> None:
    from callcenter.campaign.calendar_store import add_holiday

    world.add_dossiers("SO-TP", 1)
    make_campaign(world, total=1)
    add_holiday(world.session, day=MONDAY_9.date(), name="Nghỉ bù")
    assert service.claim_due_targets(world.session, now=MONDAY_9, limit=1) == []
    row = world.session.scalars(select(CallTarget).execution_options(populate_existing=True)).one()
    assert row.next_attempt_at == datetime(2026, 11, 24, 8, 0, tzinfo=VN_TZ)


def test_results_after_a_stop_close_the_target_instead_of_queueing_it(world: World) -> None:
    world.add_dossiers("SO-TP", 2)
    campaign = make_campaign(world, total=2)
    first, second = service.claim_due_targets(world.session, now=MONDAY_9, limit=2)
    service.pause_campaign(world.session, campaign_id=campaign.id, actor="op", now=MONDAY_9)
    paused = service.record_attempt_result(
        world.session, target_id=first.target_id, outcome=BUSY[0], survey=BUSY[1], now=MONDAY_9
    )
    assert paused == TargetState.QUEUED  # waits for the resume
    service.stop_campaign(world.session, campaign_id=campaign.id, actor="op", now=MONDAY_9)
    stopped = service.record_attempt_result(
        world.session, target_id=second.target_id, outcome=BUSY[0], survey=BUSY[1], now=MONDAY_9
    )
    assert stopped == TargetState.SKIPPED
    assert target(world, first.target_id).state == TargetState.SKIPPED  # queued ones were closed by the stop


def test_guards_are_created_once_and_existing_ones_are_left_alone(world: World) -> None:
    """Thousands of phones in one call: every guard exists once, a held one is unchanged."""
    phones = {f"hash-{i:05d}" for i in range(2_507)}
    held = min(phones)
    world.session.add(
        PhoneCallGuard(phone_hash=held, active_target_id=42, day=MONDAY_9.date(), attempts_today=2,
                       updated_at=MONDAY_9)
    )  # fmt: skip
    world.session.flush()
    service._ensure_guards(world.session, phones, MONDAY_9 + timedelta(hours=1))
    service._ensure_guards(world.session, phones, MONDAY_9 + timedelta(hours=2))  # idempotent
    rows = world.session.scalars(select(PhoneCallGuard).execution_options(populate_existing=True)).all()
    assert sorted(r.phone_hash for r in rows) == sorted(phones)
    kept = next(r for r in rows if r.phone_hash == held)
    assert (kept.active_target_id, kept.attempts_today) == (42, 2)
    fresh = [r for r in rows if r.phone_hash != held]
    assert {(r.active_target_id, r.attempts_today) for r in fresh} == {(None, 0)}
