"""Re-verification (phúc tra): a reproducible random re-check sample per agency and month or quarter.

The sample is drawn once the period has ended, and stored; drawing again for the same agency and
period returns the same rows. The seed defaults to a digest of the agency code and the period, so a
second installation given the same answers draws the same sample. Only the export carries personal
data (name, phone), and every export is written to the audit log before anything is handed out.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import phonenumbers
from phonenumbers import PhoneNumberFormat
from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.analysis.models import ReverificationItem, ReverificationSample
from callcenter.analysis.periods import Period, PeriodKind
from callcenter.analysis.report import CHANNEL_LABELS
from callcenter.core.clock import VN_TZ
from callcenter.core.errors import NotFound, ValidationError
from callcenter.core.models import AuditLog
from callcenter.core.pii import PiiCipher
from callcenter.intake.models import Agency, Dossier, Field
from callcenter.ivr.models import ResponseReason, ResponseStatus, SurveyResponse

MIN_SAMPLE = 10
SAMPLE_SHARE = 0.05


def default_size(population: int) -> int:
    """5 % of the answers, at least 10, never more than there are."""
    return min(population, max(MIN_SAMPLE, math.ceil(population * SAMPLE_SHARE)))


def default_seed(agency_code: str, period: Period) -> int:
    digest = hashlib.sha256(f"phuc-tra:{agency_code}:{period.key}".encode()).digest()
    return int.from_bytes(digest[:6], "big")


def draw_sample(
    session: Session,
    *,
    agency_id: int,
    period: Period,
    actor: str,
    now: datetime,
    size: int | None = None,
    seed: int | None = None,
) -> ReverificationSample:
    """Draw (or return the already drawn) re-check sample of an agency's completed answers."""
    if period.kind == PeriodKind.YEAR:
        raise ValidationError("phúc tra is drawn per month or per quarter, not per year", field="period")
    if now < period.end:
        # A stored sample is final (drawing again returns it): drawn early, it would leave every later
        # answer of the period out of the re-check for good.
        first_day = period.end.astimezone(VN_TZ).strftime("%d/%m/%Y")
        raise ValidationError(
            f"{period.key} has not ended yet; its phúc tra sample can be drawn from {first_day}",
            field="period",
        )
    existing = session.scalar(
        select(ReverificationSample).where(
            ReverificationSample.agency_id == agency_id, ReverificationSample.period_key == period.key
        )
    )
    if existing is not None:
        return existing
    agency = session.get(Agency, agency_id)
    if agency is None:
        raise ValidationError(f"no agency with id {agency_id}", field="agency")
    # Only answers tied to a dossier can be re-checked: the verifier calls the submitter back.
    ids = sorted(
        session.scalars(
            select(SurveyResponse.id).where(
                SurveyResponse.agency_id == agency_id,
                SurveyResponse.status == ResponseStatus.COMPLETED.value,
                SurveyResponse.dossier_id.is_not(None),
                SurveyResponse.answered_at >= period.start,
                SurveyResponse.answered_at < period.end,
            )
        )
    )
    if size is not None and size < 1:
        raise ValidationError("must be at least 1", field="size")
    k = min(len(ids), size) if size is not None else default_size(len(ids))
    seed = seed if seed is not None else default_seed(agency.code, period)
    chosen = random.Random(seed).sample(ids, k)
    sample = ReverificationSample(
        agency_id=agency_id,
        period_key=period.key,
        seed=seed,
        population=len(ids),
        size=k,
        created_by=actor,
        created_at=now,
    )
    session.add(sample)
    session.flush()
    session.add_all(
        ReverificationItem(sample_id=sample.id, response_id=rid, rank=rank)
        for rank, rid in enumerate(chosen, 1)
    )
    session.flush()
    return sample


def get_sample(session: Session, sample_id: int) -> ReverificationSample:
    sample = session.get(ReverificationSample, sample_id)
    if sample is None:
        raise NotFound(f"no re-verification sample {sample_id}")
    return sample


@dataclass(frozen=True)
class RecheckRecord:
    """One answer to re-check, with the submitter's contact details (personal data).

    Machine-friendly values, as the JSON export gives them: ``channel`` is the code (``call``,
    ``web`` …) and ``phone`` is E.164 (``+84905123456``). The CSV shows them for people
    (:func:`records_csv`).
    """

    rank: int
    response_id: int
    dossier_code: str
    agency: str
    field: str
    channel: str
    answered_at_local: str
    satisfied: bool | None
    reasons: str
    submitter_name: str
    phone: str


def export_sample(
    session: Session,
    *,
    sample_id: int,
    cipher: PiiCipher,
    actor: str,
    role: str,
    now: datetime,
    purpose: str = "phúc tra",
) -> list[RecheckRecord]:
    """The sample with decrypted names and phones; the access is written to ``audit_log`` first.

    The caller must already have checked that ``role`` may see personal data (verifier, admin).
    """
    sample = get_sample(session, sample_id)
    session.add(
        AuditLog(
            at=now,
            actor=actor,
            role=role,
            action="reverification.export",
            subject=f"reverification_sample:{sample.id}",
            detail=f"agency_id={sample.agency_id} period={sample.period_key} "
            f"rows={sample.size} purpose={purpose}",
        )
    )
    session.flush()
    rows = session.execute(
        select(
            ReverificationItem.rank,
            SurveyResponse.id,
            SurveyResponse.channel,
            SurveyResponse.answered_at,
            SurveyResponse.satisfied,
            Dossier.code,
            Dossier.submitter_name_enc,
            Dossier.phone_enc,
            Agency.name.label("agency_name"),
            Field.name.label("field_name"),
        )
        .join(SurveyResponse, SurveyResponse.id == ReverificationItem.response_id)
        .join(Dossier, Dossier.id == SurveyResponse.dossier_id)
        .join(Agency, Agency.id == SurveyResponse.agency_id)
        .outerjoin(Field, Field.id == SurveyResponse.field_id)
        .where(ReverificationItem.sample_id == sample.id)
        .order_by(ReverificationItem.rank)
    ).all()
    reasons: dict[int, list[int]] = {}
    ids = [r.id for r in rows]
    if ids:
        for rid, code in session.execute(
            select(ResponseReason.response_id, ResponseReason.reason_code)
            .where(ResponseReason.response_id.in_(ids))
            .order_by(ResponseReason.reason_code)
        ):
            reasons.setdefault(rid, []).append(code)
    return [
        RecheckRecord(
            rank=r.rank,
            response_id=r.id,
            dossier_code=r.code,
            agency=r.agency_name,
            field=r.field_name or "",
            channel=r.channel,
            answered_at_local=r.answered_at.astimezone(VN_TZ).strftime("%d/%m/%Y %H:%M"),
            satisfied=r.satisfied,
            reasons=";".join(str(c) for c in reasons.get(r.id, [])),
            submitter_name=cipher.decrypt(r.submitter_name_enc),
            phone=cipher.decrypt(r.phone_enc),
        )
        for r in rows
    ]


CSV_HEADERS = (
    "STT",
    "Mã phiếu",
    "Mã hồ sơ",
    "Cơ quan",
    "Lĩnh vực",
    "Kênh",
    "Thời gian đánh giá",
    "Hài lòng",
    "Lý do",
    "Họ và tên",
    "Số điện thoại",
)


def dial_form(e164: str) -> str:
    """The phone as a Vietnamese verifier dials it, grouped: ``+84905123456`` → ``0905 123 456``.

    The national form with its usual grouping (mobiles 4-3-3, landlines ``0236 3822 123``,
    ``024 3822 1234``); a foreign number keeps its international form (``+1 650-253-0000``). The
    spaces keep a spreadsheet from reading the cell as a number: Excel and LibreOffice turn
    ``0905123456`` into 905123456 (the leading zero lost) and ``+84905123456`` into 8.49E+10, but
    keep ``0905 123 456`` as text (a space is no digit separator in the vi-VN or en-US locales, and
    a group of four digits is no thousands grouping anyway), with no formula (``="0905…"``) or
    apostrophe trick that some tools show as typed. Softphones and keypads ignore the spaces.
    """
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        number = None
    if number is not None and phonenumbers.is_valid_number(number):
        kind = PhoneNumberFormat.NATIONAL if number.country_code == 84 else PhoneNumberFormat.INTERNATIONAL
        shown = phonenumbers.format_number(number, kind)
    elif e164.startswith("+84") and e164[3:].isdigit():  # not a number phonenumbers knows: 0 + rest
        national = "0" + e164[3:]
        shown = f"{national[:4]} {national[4:]}".strip()
    else:
        shown = e164
    # Anything still made only of digits (and a +) is grouped, so that it stays text.
    if shown.lstrip("+").isdigit() and len(shown) > 4:
        shown = f"{shown[:4]} {shown[4:]}"
    return shown


def records_csv(records: Sequence[RecheckRecord]) -> str:
    """The export as CSV for people (UTF-8 with BOM when written to a file, so spreadsheets read the
    diacritics): the channel by its Vietnamese name, the phone as dialled (:func:`dial_form`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_HEADERS)
    for r in records:
        satisfied = "" if r.satisfied is None else ("Hài lòng" if r.satisfied else "Chưa hài lòng")
        writer.writerow(
            [
                r.rank,
                r.response_id,
                r.dossier_code,
                r.agency,
                r.field,
                CHANNEL_LABELS.get(r.channel, r.channel),
                r.answered_at_local,
                satisfied,
                r.reasons,
                r.submitter_name,
                dial_form(r.phone),
            ]
        )
    return buffer.getvalue()
