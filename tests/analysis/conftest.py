"""Test data for the analysis domain, written straight into the other domains' tables with their models."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from callcenter.campaign.models import CallTarget, Campaign
from callcenter.core.pii import PiiCipher
from callcenter.dialer.models import CallAttempt
from callcenter.intake.models import Agency, Dossier, Field
from callcenter.ivr.models import ResponseReason, SurveyResponse

_counter = itertools.count(1)


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
        self, dossier: Dossier, *, at: datetime, outcome: str, status: str = "finished"
    ) -> CallAttempt:
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
            trunk="simulator",
            status=status,
            outcome=outcome,
            created_at=at,
            updated_at=at,
            dialed_at=at,
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
