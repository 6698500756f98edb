"""Test data for the analysis domain, written straight into the other domains' tables with their models."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from callcenter.campaign.models import CallTarget, Campaign
from callcenter.core.clock import Clock, SystemClock
from callcenter.core.db import make_engine, make_session_factory, upgrade_database
from callcenter.core.pii import PiiCipher
from callcenter.core.runtime import Runtime
from callcenter.core.settings import Settings
from callcenter.dialer.models import CallAttempt
from callcenter.intake.models import Agency, Dossier, Field
from callcenter.ivr.models import ResponseReason, SurveyResponse

_counter = itertools.count(1)
# A citizen's comment with a phone number and an ID number in it: reports must mask both.
COMMENT = "Tôi phải nộp thêm tiền, gọi số 0905 123 456 không ai nghe; CCCD của tôi là 048090001234."


@dataclass
class Builder:
    """Creates agencies, dossiers, call attempts and survey responses with realistic required columns."""

    session: Session
    cipher: PiiCipher
    campaign_id: int | None = None
    phones: dict[int, str] = field(default_factory=dict)  # dossier id → clear E.164 phone

    def agency(self, code: str, name: str | None = None) -> Agency:
        row = Agency(code=code, name=name or f"Cơ quan {code}", organisations_only=False)
        self.session.add(row)
        self.session.flush()
        return row

    def field(self, code: str, name: str | None = None) -> Field:
        row = Field(code=code, name=name or f"Lĩnh vực {code}")
        self.session.add(row)
        self.session.flush()
        return row

    def dossier(
        self,
        agency: Agency,
        fld: Field,
        *,
        returned_at: datetime | None,
        timeliness: str = "on_time",
        phone: str | None = None,
        name: str = "Nguyễn Văn An",
        national_id: str | None = "048090001234",
    ) -> Dossier:
        n = next(_counter)
        phone = phone or f"+8490{n % 10_000_000:07d}"
        row = Dossier(
            source="test",
            code=f"HS-{n:06d}",
            agency_id=agency.id,
            field_id=fld.id,
            procedure_name="Cấp giấy phép",
            submitter_name_enc=self.cipher.encrypt(name),
            phone_enc=self.cipher.encrypt(phone),
            phone_hash=self.cipher.phone_hash(phone),
            phone_kind="mobile",
            national_id_enc=self.cipher.encrypt_optional(national_id),
            is_organisation=False,
            received_at=(returned_at or datetime(2026, 1, 1, tzinfo=UTC)) - timedelta(days=10),
            due_at=None,
            returned_at=returned_at,
            status="returned" if returned_at else "received",
            timeliness=timeliness,
            content_hash=hashlib.sha256(str(n).encode()).hexdigest(),
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
            updated_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
        self.session.add(row)
        self.session.flush()
        self.phones[row.id] = phone
        return row

    def _campaign(self) -> int:
        if self.campaign_id is None:
            at = datetime(2025, 1, 1, tzinfo=UTC)
            row = Campaign(
                name="Thử nghiệm",
                status="running",
                policy="danang_2223",
                policy_params={},
                returned_from=date(2025, 1, 1),
                returned_to=date(2027, 12, 31),
                field_ids=None,
                starts_at=at,
                ends_at=at + timedelta(days=1000),
                calling_rules={},
                seed=1,
                created_by="test",
                created_at=at,
                updated_at=at,
            )
            self.session.add(row)
            self.session.flush()
            self.campaign_id = row.id
        return self.campaign_id

    def attempt(
        self, dossier: Dossier, *, at: datetime, outcome: str | None, status: str = "finished"
    ) -> CallAttempt:
        # As the dialer writes them (callcenter.dialer.state): an outcome exactly when finished.
        assert (outcome is not None) == (status == "finished"), "only a finished attempt has an outcome"
        campaign_id = self._campaign()
        target = (
            self.session.query(CallTarget).filter_by(campaign_id=campaign_id, dossier_id=dossier.id).first()
        )
        if target is None:
            target = CallTarget(
                campaign_id=campaign_id,
                dossier_id=dossier.id,
                agency_id=dossier.agency_id,
                phone_hash=dossier.phone_hash,
                stratum="late_overdue" if dossier.timeliness in ("late", "overdue") else "on_time",
                draw_rank=next(_counter),
                wave=0,
                state="completed",
                attempts=0,
                attempts_by_outcome={},
                updated_at=at,
            )
            self.session.add(target)
            self.session.flush()
        row = CallAttempt(
            target_id=target.id,
            campaign_id=campaign_id,
            dossier_id=dossier.id,
            agency_id=dossier.agency_id,
            field_id=dossier.field_id,
            trunk="simulator",
            status=status,
            outcome=outcome,
            created_at=at,
            updated_at=at,
            dialed_at=at,
            ended_at=at if status in ("finished", "cancelled") else None,
        )
        self.session.add(row)
        self.session.flush()
        return row

    def response(
        self,
        *,
        agency: Agency,
        fld: Field | None,
        answered_at: datetime,
        satisfied: bool | None,
        reasons: Sequence[int] = (),
        channel: str = "call",
        dossier: Dossier | None = None,
        attempt: CallAttempt | None = None,
        status: str = "completed",
        comment: str | None = None,
        phone_hash: str | None = None,
    ) -> SurveyResponse:
        row = SurveyResponse(
            channel=channel,
            attempt_id=attempt.id if attempt else None,
            external_ref=None if channel == "call" else f"ext-{next(_counter)}",
            dossier_id=dossier.id if dossier else None,
            agency_id=agency.id,
            field_id=fld.id if fld else None,
            dossier_timeliness=dossier.timeliness if dossier else None,
            phone_hash=phone_hash or (dossier.phone_hash if dossier else None),
            questionnaire_version="v1",
            status=status,
            satisfied=satisfied,
            answered_via="dtmf" if channel == "call" else channel,
            comment_enc=self.cipher.encrypt_optional(comment),
            comment_status="done" if comment else "none",
            started_at=answered_at - timedelta(seconds=30),
            answered_at=answered_at,
            completed_at=answered_at + timedelta(seconds=20) if status == "completed" else None,
        )
        row.reasons = [ResponseReason(reason_code=c, source="dtmf") for c in reasons]
        self.session.add(row)
        self.session.flush()
        return row

    def called_response(
        self,
        dossier: Dossier,
        agency: Agency,
        fld: Field,
        *,
        at: datetime,
        satisfied: bool | None,
        reasons: Sequence[int] = (),
        comment: str | None = None,
    ) -> SurveyResponse:
        """A dossier called once, answered, and its survey completed."""
        attempt = self.attempt(dossier, at=at, outcome="answered")
        return self.response(
            agency=agency,
            fld=fld,
            answered_at=at + timedelta(seconds=40),
            satisfied=satisfied,
            reasons=reasons,
            dossier=dossier,
            attempt=attempt,
            comment=comment,
        )


@pytest.fixture
def build(db_session: Session, cipher: PiiCipher) -> Iterator[Builder]:
    yield Builder(db_session, cipher)


def _at(day: int, hour: int = 9, month: int = 3, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


@pytest.fixture
def small_city(build: Builder) -> dict[str, Any]:
    return populate_small_city(build)


def populate_small_city(build: Builder) -> dict[str, Any]:
    """Agency A in March 2026: 80 on-time and 20 late dossiers, the late ones over-sampled."""
    a = build.agency("A", "Sở Xây dựng")
    b = build.agency("B", "Sở Tư pháp")
    f1, f2 = build.field("F1", "Đất đai"), build.field("F2", "Hộ tịch")
    on_time = [build.dossier(a, f1, returned_at=_at(2 + i % 20), timeliness="on_time") for i in range(80)]
    late = [build.dossier(a, f2, returned_at=_at(3 + i % 20), timeliness="late") for i in range(20)]
    # 100 more dossiers of A returned in January: the year so far has N = 200.
    for i in range(100):
        build.dossier(a, f1, returned_at=_at(5 + i % 20, month=1), timeliness="on_time")

    # On-time stratum: 4 answers, 3 satisfied. Late stratum: 6 answers, 2 satisfied.
    for d, ok in zip(on_time[:4], (True, True, True, False), strict=True):
        build.called_response(d, a, f1, at=_at(10), satisfied=ok, reasons=() if ok else (2,))
    late_reasons = [(2, 4), (2, 9), (4,), (), ()]
    for d, ok in zip(late[:6], (True, True, False, False, False, False), strict=True):
        build.called_response(d, a, f2, at=_at(11), satisfied=ok, reasons=() if ok else late_reasons.pop(0))
    # Two more dossiers called without reaching anyone (one twice), one reached but no answer.
    build.attempt(on_time[10], at=_at(12), outcome="no_answer")
    build.attempt(on_time[10], at=_at(13), outcome="busy")
    build.attempt(on_time[11], at=_at(12), outcome="busy")
    build.attempt(on_time[12], at=_at(12), outcome="answered")
    # A cancelled attempt is never "called".
    build.attempt(on_time[13], at=_at(12), outcome=None, status="cancelled")
    # Web answer in March for A (no dossier): counted in the combined view, no stratum.
    build.response(agency=a, fld=f1, answered_at=_at(15), satisfied=True, channel="web")
    # Local-time edges: 31 March 17:30 UTC is 1 April in Da Nang; 28 Feb 17:00 UTC is 1 March.
    build.response(
        agency=a,
        fld=f1,
        answered_at=datetime(2026, 3, 31, 17, 30, tzinfo=UTC),
        satisfied=False,
        channel="web",
        reasons=(1,),
    )
    build.response(
        agency=a,
        fld=f1,
        answered_at=datetime(2026, 2, 28, 17, 0, tzinfo=UTC),
        satisfied=True,
        channel="paper",
    )
    # February (previous month): 2 answers, both satisfied. March 2025: 4 answers, 1 satisfied.
    for _ in range(2):
        build.response(agency=a, fld=f1, answered_at=_at(10, month=2), satisfied=True, channel="web")
    for ok in (True, False, False, False):
        build.response(agency=a, fld=f1, answered_at=_at(10, year=2025), satisfied=ok, channel="web")
    # Agency B: one answer in March; an opted-out call has no satisfaction answer.
    db = build.dossier(b, f1, returned_at=_at(1), timeliness="on_time")
    build.called_response(db, b, f1, at=_at(20), satisfied=False, reasons=(6,), comment=COMMENT)
    build.response(agency=b, fld=f1, answered_at=_at(21), satisfied=None, status="opted_out")
    return {"a": a, "b": b, "f1": f1, "f2": f2}


@contextmanager
def cli_runtime(
    path: Path,
    cipher: PiiCipher,
    monkeypatch: pytest.MonkeyPatch,
    populate: Callable[[Builder], None],
    *,
    clock: Clock | None = None,
) -> Iterator[Runtime]:
    """A migrated SQLite file, populated and committed, that the analysis CLI commands run against."""
    from callcenter.analysis import cli

    url = f"sqlite:///{path / 'cc.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with factory() as session:
        populate(Builder(session, cipher))
        session.commit()
    settings = Settings(env="test", database_url=url)
    rt = Runtime(
        settings=settings, engine=engine, sessions=factory, cipher=cipher, clock=clock or SystemClock()
    )
    monkeypatch.setattr(cli, "_runtime", lambda: rt)
    try:
        yield rt
    finally:
        engine.dispose()


def one_agency(build: Builder) -> None:
    build.agency("XD", "Sở Xây dựng")
