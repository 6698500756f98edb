"""Campaign status (per agency, attempts by outcome, ETA) and the do-not-call import."""

from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from callcenter.campaign import service
from callcenter.campaign.models import CallTarget
from callcenter.campaign.optouts import import_opt_outs, is_phone_header
from callcenter.campaign.reporting import campaign_report
from callcenter.core.clock import VN_TZ, ManualClock
from callcenter.core.models import OptOut
from callcenter.core.outcomes import CallOutcome, SurveyOutcome
from tests.campaign.conftest import MONDAY_9, World, make_campaign, phone_for


def test_status_counts_and_eta_at_the_current_rate(world: World) -> None:
    world.add_dossiers("SO-TP", 20)
    campaign = make_campaign(world, total=20)
    clock = ManualClock(MONDAY_9)
    # Monday 09:00–10:00: 4 completed, 1 busy, 1 in progress
    due = service.claim_due_targets(world.session, now=clock.now(), limit=6)
    clock.set(MONDAY_9 + timedelta(hours=1))
    for d in due[:4]:
        service.record_attempt_result(
            world.session,
            target_id=d.target_id,
            outcome=CallOutcome.ANSWERED,
            survey=SurveyOutcome.COMPLETED,
            now=clock.now(),
        )
    service.record_attempt_result(
        world.session,
        target_id=due[4].target_id,
        outcome=CallOutcome.BUSY,
        survey=SurveyOutcome.NONE,
        now=clock.now(),
    )
    report = campaign_report(world.session, campaign_id=campaign.id, now=clock.now())
    [agency] = report.agencies
    assert (agency.target, agency.completed, agency.in_progress, agency.queued) == (20, 4, 1, 15)
    assert agency.attempts == 5
    assert agency.attempts_by_outcome == {"answered": 4, "busy": 1}
    # 4 per calling hour, 16 to go → 4 more calling hours from 10:00 Monday: 11:30 + 2.5 h → 16:00
    assert report.completion_rate_per_open_hour == 4.0
    assert agency.eta == datetime(2026, 11, 23, 16, 0, tzinfo=VN_TZ)
    assert report.eta == agency.eta


def test_status_before_any_completion_has_no_eta(world: World) -> None:
    world.add_dossiers("SO-TP", 3)
    campaign = make_campaign(world, total=3)
    report = campaign_report(world.session, campaign_id=campaign.id, now=MONDAY_9 + timedelta(hours=2))
    assert report.eta is None and "no completed survey" in report.agencies[0].note


def test_opt_out_import_reports_bad_rows_by_number(world: World) -> None:
    world.add_dossiers("SO-TP", 3)
    make_campaign(world, total=2)  # draws 2 of the 3
    queued = world.session.scalars(select(CallTarget)).all()
    victim = queued[0].phone_hash
    number = next(phone_for(i) for i in range(3) if world.cipher.phone_hash(phone_for(i)) == victim)
    text = (
        f"sdt,ghi chu\n{number},khong muon nhan cuoc goi\n\n12345,sai\n0905123456,\n{number},lap lai\n"
        "0914123432 (chồng),vợ nghe máy\n"
    )
    result = import_opt_outs(world.session, text=text, cipher=world.cipher, now=MONDAY_9)
    assert result.rows == 5
    assert result.added == 2 and result.already_listed == 1
    # The reason and the row number; of the number itself, only its last three digits.
    assert result.errors == [
        "row 4: not a valid Vietnamese phone number (**345)",
        "row 7: phone number contains characters other than digits (*******432)",
    ]
    assert world.session.scalar(select(OptOut.source).where(OptOut.phone_hash == victim)) == "operator_list"
    states = {
        t.phone_hash: t.state
        for t in world.session.scalars(select(CallTarget).execution_options(populate_existing=True))
    }
    assert states[victim] == "opted_out"
    assert sorted(states.values()) == ["opted_out", "queued", "queued"]  # replaced by the third dossier


def test_opt_out_import_without_a_phone_column(world: World) -> None:
    result = import_opt_outs(
        world.session, text="ho ten,dia chi\nAn,Da Nang\n", cipher=world.cipher, now=MONDAY_9
    )
    assert result.added == 0 and result.errors[0].startswith("row 1: no phone column")


# Headers the list used to refuse ("no phone column"): the staff-phone import's "Điện thoại", the common
# abbreviation "Số ĐT", and "Số điện thoại" typed with combining accents (NFD, as macOS writes it).
@pytest.mark.parametrize(
    "header", ["Điện thoại", "Số ĐT", "Phone number", unicodedata.normalize("NFD", "Số điện thoại")]
)
def test_opt_out_import_knows_the_usual_vietnamese_phone_headers(world: World, header: str) -> None:
    text = f"Họ tên,{header}\nNguyễn Văn An,0905 123 456\n"
    result = import_opt_outs(world.session, text=text, cipher=world.cipher, now=MONDAY_9)
    assert (result.rows, result.added, result.errors) == (1, 1, [])
    # The staff-phone list of the analysis domain goes by the same headers.
    assert is_phone_header(header)


def test_opt_out_import_that_takes_nothing_has_failed(world: World) -> None:
    no_column = import_opt_outs(
        world.session, text="Họ tên,Ghi chú\nAn,x\n", cipher=world.cipher, now=MONDAY_9
    )
    assert no_column.failed and "found, as initials: H. t., G. c." in no_column.errors[0]
    # A list without a header whose first row has no digit: that row may be a name, never echoed.
    no_header = import_opt_outs(
        world.session, text="Nguyễn Văn An,\n0905123456,\n", cipher=world.cipher, now=MONDAY_9
    )
    assert (
        no_header.failed
        and "Nguyễn" not in no_header.errors[0]
        and "N. V. A., (trống)" in no_header.errors[0]
    )
    all_bad = import_opt_outs(world.session, text="sdt\n123\nabc\n", cipher=world.cipher, now=MONDAY_9)
    assert all_bad.failed and len(all_bad.errors) == 2
    mixed = import_opt_outs(world.session, text="sdt\n123\n0905123456\n", cipher=world.cipher, now=MONDAY_9)
    assert mixed.errors and mixed.added == 1 and not mixed.failed
    listed = import_opt_outs(world.session, text="sdt\n123\n0905123456\n", cipher=world.cipher, now=MONDAY_9)
    assert listed.already_listed == 1 and not listed.failed  # the list is applied: nothing was lost
