"""Integrity flags (bursts, repeated phones, staff phones) and the reproducible phúc tra sample."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.analysis import integrity, reverify, tasks
from callcenter.analysis.models import AnomalyKind, ReverificationItem, ReverificationSample, StaffPhone
from callcenter.analysis.periods import Period
from callcenter.core.clock import ManualClock
from callcenter.core.errors import ValidationError
from callcenter.core.models import AuditLog
from callcenter.core.pii import PiiCipher

from .conftest import Builder

MARCH = Period.parse("2026-03")
NOW = datetime(2026, 4, 1, tzinfo=UTC)


def test_bursts_repeated_and_staff_phones(
    db_session: Session, build: Builder, cipher: PiiCipher, tmp_path: Path
) -> None:
    a, b = build.agency("XD"), build.agency("TP")
    f = build.field("DD")
    # 12 web answers for A within four minutes, straddling a 10-minute boundary (09:58-10:02 UTC).
    start = datetime(2026, 3, 10, 9, 58, tzinfo=UTC)
    for i in range(12):
        build.response(
            agency=a, fld=f, answered_at=start + timedelta(seconds=20 * i), satisfied=True, channel="web"
        )
    # B: answers spread over the month stay quiet.
    for day in range(1, 13):
        build.response(
            agency=b, fld=f, answered_at=datetime(2026, 3, day, 3, tzinfo=UTC), satisfied=True, channel="web"
        )
    # One phone answering B four times.
    repeated = cipher.phone_hash("+84905000111")
    for day in (2, 9, 16, 23):
        build.response(
            agency=b,
            fld=f,
            answered_at=datetime(2026, 3, day, 5, tzinfo=UTC),
            satisfied=True,
            channel="web",
            phone_hash=repeated,
        )
    # A staff member of A rates A; the same phone rating B is not A's staff rating itself.
    staff_file = tmp_path / "staff.csv"
    staff_file.write_text(
        "Họ tên,Số điện thoại\nCán bộ 1,0905 777 888\nCán bộ 2,0912345678\n,\n", encoding="utf-8"
    )
    phones = integrity.read_phone_column(staff_file)
    assert phones == [(2, "0905 777 888"), (3, "0912345678")]
    imported = integrity.import_staff_phones(
        db_session, agency_id=a.id, phones=phones, cipher=cipher, source="staff.csv", now=NOW
    )
    assert (imported.added, imported.already_known) == (2, 0)
    again = integrity.import_staff_phones(
        db_session, agency_id=a.id, phones=phones, cipher=cipher, source="staff.csv", now=NOW
    )
    assert (again.added, again.already_known) == (0, 2)
    stored = db_session.scalars(select(StaffPhone.phone_hash)).all()
    assert cipher.phone_hash("+84905777888") in stored and "0905777888" not in "".join(stored)
    staff_hash = cipher.phone_hash("+84905777888")
    own = build.response(
        agency=a,
        fld=f,
        answered_at=datetime(2026, 3, 20, 2, tzinfo=UTC),
        satisfied=True,
        channel="web",
        phone_hash=staff_hash,
    )
    build.response(
        agency=b,
        fld=f,
        answered_at=datetime(2026, 3, 20, 2, tzinfo=UTC),
        satisfied=True,
        channel="web",
        phone_hash=staff_hash,
    )

    thresholds = integrity.Thresholds(burst_window_minutes=10, burst_min_answers=10, phone_min_answers=3)
    found = integrity.detect_anomalies(db_session, period=MARCH, now=NOW, thresholds=thresholds)
    by_kind = {(x.kind, x.agency_id): x for x in found}
    assert set(by_kind) == {
        (AnomalyKind.BURST.value, a.id),
        (AnomalyKind.REPEATED_PHONE.value, b.id),
        (AnomalyKind.STAFF_PHONE.value, a.id),
    }
    burst = by_kind[(AnomalyKind.BURST.value, a.id)]
    assert burst.count == 12  # caught whole by the half-shifted windows
    assert burst.window_start <= start and start + timedelta(minutes=4) <= burst.window_end
    assert by_kind[(AnomalyKind.REPEATED_PHONE.value, b.id)].count == 4
    assert by_kind[(AnomalyKind.STAFF_PHONE.value, a.id)].detail["response_id"] == own.id
    # Idempotent: a second run adds nothing.
    assert integrity.detect_anomalies(db_session, period=MARCH, now=NOW, thresholds=thresholds) == []
    assert len(integrity.list_anomalies(db_session, period=MARCH, agency_id=a.id)) == 2


def test_staff_list_with_a_bad_row_is_rejected_whole(
    db_session: Session, build: Builder, cipher: PiiCipher
) -> None:
    a = build.agency("XD")
    with pytest.raises(integrity.StaffListRejected) as caught:
        integrity.import_staff_phones(
            db_session,
            agency_id=a.id,
            phones=[(2, "0905777888"), (3, "12ab"), (4, "0123")],
            cipher=cipher,
            source="x",
            now=NOW,
        )
    assert [e.split(":")[0] for e in caught.value.errors] == ["row 3", "row 4"]
    assert db_session.scalar(select(func.count()).select_from(StaffPhone)) == 0


def test_reverification_sample_is_reproducible_and_export_is_audited(
    db_session: Session, build: Builder, cipher: PiiCipher
) -> None:
    a = build.agency("XD")
    f = build.field("DD")
    for i in range(40):
        d = build.dossier(a, f, returned_at=datetime(2026, 3, 1, tzinfo=UTC), name=f"Người số {i}")
        build.called_response(d, a, f, at=datetime(2026, 3, 2 + i % 20, 3, tzinfo=UTC), satisfied=i % 3 != 0)
    build.response(
        agency=a, fld=f, answered_at=datetime(2026, 3, 5, tzinfo=UTC), satisfied=True, channel="web"
    )
    sample = reverify.draw_sample(db_session, agency_id=a.id, period=MARCH, actor="test", now=NOW)
    assert (sample.population, sample.size) == (40, 10)  # the web answer has no dossier to call back
    assert sample.seed == reverify.default_seed("XD", MARCH)
    first = db_session.scalars(
        select(ReverificationItem.response_id)
        .where(ReverificationItem.sample_id == sample.id)
        .order_by(ReverificationItem.rank)
    ).all()
    assert reverify.draw_sample(db_session, agency_id=a.id, period=MARCH, actor="x", now=NOW).id == sample.id
    # The same draw from the same answers and seed, independently of the stored one.
    all_ids = sorted(
        r.id
        for r in db_session.scalars(
            select(reverify.SurveyResponse).where(reverify.SurveyResponse.dossier_id.is_not(None))
        )
    )
    assert list(first) == random.Random(sample.seed).sample(all_ids, 10)

    before = db_session.scalar(select(func.count()).select_from(AuditLog)) or 0
    records = reverify.export_sample(
        db_session, sample_id=sample.id, cipher=cipher, actor="cli:kiem-tra", role="verifier", now=NOW
    )
    assert [r.response_id for r in records] == list(first)
    assert all(r.submitter_name.startswith("Người số ") and r.phone.startswith("+84") for r in records)
    assert (db_session.scalar(select(func.count()).select_from(AuditLog)) or 0) == before + 1
    csv_text = reverify.records_csv(records)
    assert csv_text.splitlines()[0].startswith("STT,Mã phiếu") and len(csv_text.splitlines()) == 11

    with pytest.raises(ValidationError, match="month or per quarter"):
        reverify.draw_sample(db_session, agency_id=a.id, period=Period.parse("2026"), actor="x", now=NOW)
    small = reverify.draw_sample(
        db_session, agency_id=a.id, period=Period.parse("2026-Q1"), actor="x", now=NOW, size=3
    )
    assert small.size == 3 and small.population == 40


def test_reverification_sample_is_refused_before_its_period_ends(db_session: Session, build: Builder) -> None:
    a = build.agency("XD")
    f = build.field("DD")
    july = Period.parse("2026-07")
    for day in (2, 9):
        d = build.dossier(a, f, returned_at=datetime(2026, 7, 1, tzinfo=UTC))
        build.called_response(d, a, f, at=datetime(2026, 7, day, 3, tzinfo=UTC), satisfied=True)
    mid_july = datetime(2026, 7, 10, 3, tzinfo=UTC)
    # A stored sample is never redrawn: drawn on 10/07 it would leave out every later answer of July.
    with pytest.raises(ValidationError, match=r"2026-07 has not ended yet.*from 01/08/2026") as caught:
        reverify.draw_sample(db_session, agency_id=a.id, period=july, actor="x", now=mid_july)
    assert caught.value.field == "period"
    with pytest.raises(ValidationError, match="2027-07 has not ended yet"):  # a typo for 2026-07
        reverify.draw_sample(
            db_session, agency_id=a.id, period=Period.parse("2027-07"), actor="x", now=mid_july
        )
    with pytest.raises(ValidationError, match="2026-Q3 has not ended yet"):
        reverify.draw_sample(
            db_session,
            agency_id=a.id,
            period=Period.parse("2026-Q3"),
            actor="x",
            now=datetime(2026, 8, 1, tzinfo=UTC),
        )
    # The last second of July (local time) is still too early.
    with pytest.raises(ValidationError, match="has not ended"):
        reverify.draw_sample(
            db_session, agency_id=a.id, period=july, actor="x", now=july.end - timedelta(seconds=1)
        )
    assert db_session.scalar(select(func.count()).select_from(ReverificationSample)) == 0

    d = build.dossier(a, f, returned_at=datetime(2026, 7, 1, tzinfo=UTC))
    build.called_response(d, a, f, at=datetime(2026, 7, 30, 3, tzinfo=UTC), satisfied=False)
    sample = reverify.draw_sample(db_session, agency_id=a.id, period=july, actor="x", now=july.end)
    assert (sample.population, sample.size) == (3, 3)  # the answer of 30/07 is in it


def test_hourly_detection_also_checks_the_previous_month(
    db_session: Session, build: Builder, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = build.agency("XD")
    f = build.field("DD")
    # 30 answers in five minutes at 23:50 on 31 March (Da Nang), after the month's last hourly run.
    start = datetime(2026, 3, 31, 16, 50, tzinfo=UTC)
    for i in range(30):
        build.response(
            agency=a, fld=f, answered_at=start + timedelta(seconds=10 * i), satisfied=True, channel="web"
        )
    sessions = sessionmaker(
        bind=db_session.connection(), join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    first_april_run = ManualClock(datetime(2026, 3, 31, 17, 30, tzinfo=UTC))  # 00:30 on 1 April
    monkeypatch.setattr(tasks, "_context", lambda: SimpleNamespace(sessions=sessions, clock=first_april_run))
    assert tasks.detect_anomalies() == 1
    flagged = integrity.list_anomalies(db_session, period=MARCH, agency_id=a.id)
    assert [(x.kind, x.count) for x, _code in flagged] == [(AnomalyKind.BURST.value, 30)]
    assert tasks.detect_anomalies() == 0  # idempotent: the next hourly run adds nothing
    assert tasks.detect_anomalies(period="2026-04") == 0  # an explicit period is that period only
