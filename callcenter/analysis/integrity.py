"""Integrity checks the seed asks for: bursts of answers, one phone answering many times, staff phones.

Detection runs as SQL aggregates over a period and stores each finding once in ``anomalies`` (unique
by kind, agency and key), so running it again — by hand or from the beat schedule — adds only what is
new. Staff phones are stored as keyed hashes only, the same hash ``dossiers.phone_hash`` uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnElement

from callcenter.analysis.channel_import import read_csv_rows, read_xlsx_rows
from callcenter.analysis.models import Anomaly, AnomalyKind, StaffPhone
from callcenter.analysis.periods import Period
from callcenter.analysis.sqlfuncs import epoch_bucket
from callcenter.campaign.optouts import is_phone_header
from callcenter.core.errors import ValidationError
from callcenter.core.phones import PhoneError, normalise_phone
from callcenter.core.pii import PiiCipher
from callcenter.intake.models import Agency
from callcenter.ivr.models import ResponseStatus, SurveyResponse

ANSWERED = (ResponseStatus.COMPLETED.value, ResponseStatus.PARTIAL.value)


@dataclass(frozen=True)
class Thresholds:
    burst_window_minutes: int = 10
    burst_min_answers: int = 30  # answers for one agency within one window
    phone_min_answers: int = 3  # answers from one phone within the period

    def __post_init__(self) -> None:
        # Flags are stored and never withdrawn: a threshold of 0 or 1 would flag every answer for good.
        if self.burst_window_minutes < 1:
            raise ValidationError("must be at least 1 minute", field="burst_window_minutes")
        if self.burst_min_answers < 2:
            raise ValidationError("must be at least 2 answers", field="burst_min_answers")
        if self.phone_min_answers < 2:
            raise ValidationError("must be at least 2 answers", field="phone_min_answers")


def _answered_in(period: Period) -> list[ColumnElement[bool]]:
    return [
        SurveyResponse.answered_at >= period.start,
        SurveyResponse.answered_at < period.end,
        SurveyResponse.status.in_(ANSWERED),
    ]


def _bursts(session: Session, period: Period, t: Thresholds) -> list[tuple[int, datetime, datetime, int]]:
    width = t.burst_window_minutes * 60
    found: list[tuple[int, datetime, datetime, int]] = []
    # Fixed windows, and the same windows shifted by half a width, so a burst straddling a boundary
    # is still caught; overlapping hits of one burst are reported once.
    for offset in (0, width // 2):
        bucket = ((epoch_bucket(SurveyResponse.answered_at) + offset) // width).label("bucket")
        stmt = (
            select(SurveyResponse.agency_id, bucket, func.count().label("n"))
            .where(*_answered_in(period))
            .group_by(SurveyResponse.agency_id, bucket)
            .having(func.count() >= t.burst_min_answers)
        )
        for agency_id, b, n in session.execute(stmt):
            start = datetime.fromtimestamp(int(b) * width - offset, UTC)
            end = start + timedelta(seconds=width)
            if any(a == agency_id and s < end and start < e for a, s, e, _n in found):
                continue
            found.append((agency_id, start, end, int(n)))
    return found


def detect_anomalies(
    session: Session, *, period: Period, now: datetime, thresholds: Thresholds | None = None
) -> list[Anomaly]:
    """Flag bursts, repeated phones and staff phones in a period; returns only the new flags."""
    t = thresholds or Thresholds()
    candidates: list[Anomaly] = []
    for agency_id, start, end, n in _bursts(session, period, t):
        candidates.append(
            Anomaly(
                kind=AnomalyKind.BURST.value,
                agency_id=agency_id,
                key=start.isoformat(),
                window_start=start,
                window_end=end,
                count=n,
                detail={"window_minutes": t.burst_window_minutes},
            )
        )
    repeated = (
        select(SurveyResponse.agency_id, SurveyResponse.phone_hash, func.count().label("n"))
        .where(*_answered_in(period), SurveyResponse.phone_hash.is_not(None))
        .group_by(SurveyResponse.agency_id, SurveyResponse.phone_hash)
        .having(func.count() >= t.phone_min_answers)
    )
    for agency_id, phone_hash, n in session.execute(repeated):
        candidates.append(
            Anomaly(
                kind=AnomalyKind.REPEATED_PHONE.value,
                agency_id=agency_id,
                key=f"{period.key}:{phone_hash}",
                window_start=period.start,
                window_end=period.end,
                count=int(n),
                detail={"phone_hash": phone_hash, "period": period.key},
            )
        )
    staff = (
        select(
            SurveyResponse.id, SurveyResponse.agency_id, SurveyResponse.answered_at, SurveyResponse.channel
        )
        .join(
            StaffPhone,
            and_(
                StaffPhone.phone_hash == SurveyResponse.phone_hash,
                StaffPhone.agency_id == SurveyResponse.agency_id,
            ),
        )
        .where(*_answered_in(period))
    )
    for response_id, agency_id, answered_at, channel in session.execute(staff):
        candidates.append(
            Anomaly(
                kind=AnomalyKind.STAFF_PHONE.value,
                agency_id=agency_id,
                key=f"response:{response_id}",
                window_start=answered_at,
                window_end=answered_at,
                count=1,
                detail={"response_id": response_id, "channel": channel},
            )
        )
    if not candidates:
        return []
    existing = set(
        session.execute(
            select(Anomaly.kind, Anomaly.agency_id, Anomaly.key).where(
                Anomaly.key.in_({c.key for c in candidates})
            )
        )
    )
    new = [c for c in candidates if (c.kind, c.agency_id, c.key) not in existing]
    for anomaly in new:
        anomaly.detected_at = now
    session.add_all(new)
    session.flush()
    return new


def list_anomalies(session: Session, *, period: Period, agency_id: int | None) -> list[tuple[Anomaly, str]]:
    """Flags whose window overlaps the period, newest first, with the agency code."""
    stmt = (
        select(Anomaly, Agency.code)
        .join(Agency, Agency.id == Anomaly.agency_id)
        .where(Anomaly.window_start < period.end, Anomaly.window_end >= period.start)
        .order_by(Anomaly.window_start.desc(), Anomaly.id.desc())
    )
    if agency_id is not None:
        stmt = stmt.where(Anomaly.agency_id == agency_id)
    return [(a, code) for a, code in session.execute(stmt)]


# --- staff phone list --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StaffImport:
    added: int
    already_known: int


class StaffListRejected(ValidationError):
    """The staff list has bad rows; nothing was imported. ``errors`` lists every row at fault
    (``row 3: <why>``); the message names the field once, then the rows."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        count = len(self.errors)
        shown = "; ".join(self.errors[:20]) + (" …" if count > 20 else "")
        rows = "1 bad row" if count == 1 else f"{count} bad rows"
        super().__init__(f"{rows}, nothing imported: {shown}", field="phone")


def read_phone_column(path: Path) -> list[tuple[int, str]]:
    """(row number, raw phone) from a CSV or XLSX whose header row has a phone column."""
    suffix = path.suffix.lower()
    if suffix == ".xls":
        raise ValidationError(
            f"{path.name}: old .xls workbooks are not supported; save it as .xlsx or 'CSV UTF-8'",
            field="file",
        )
    rows = read_xlsx_rows(path) if suffix == ".xlsx" else read_csv_rows(path)
    if not rows:
        raise ValidationError(f"{path.name}: the file is empty", field="phone")
    column = next((i for i, h in enumerate(rows[0]) if is_phone_header(str(h or ""))), None)
    if column is None:
        raise ValidationError(
            f"{path.name}: no phone column (expected a header such as 'Số điện thoại')", field="phone"
        )
    out = []
    for number, row in enumerate(rows[1:], start=2):
        value = row[column] if column < len(row) else None
        if value is None or str(value).strip() == "":
            continue
        out.append((number, str(value).strip()))
    return out


def import_staff_phones(
    session: Session,
    *,
    agency_id: int,
    phones: Iterable[tuple[int, str]],
    cipher: PiiCipher,
    source: str,
    now: datetime,
) -> StaffImport:
    """Store the hashes of an agency's staff phones; any bad row rejects the whole list."""
    errors: list[str] = []
    hashes: dict[str, int] = {}
    for row, raw in phones:
        try:
            hashes.setdefault(cipher.phone_hash(normalise_phone(raw).e164), row)
        except PhoneError as exc:
            errors.append(f"row {row}: {exc}")
    if errors:
        raise StaffListRejected(errors)
    known = set(
        session.scalars(
            select(StaffPhone.phone_hash).where(
                StaffPhone.agency_id == agency_id, StaffPhone.phone_hash.in_(list(hashes))
            )
        )
    )
    session.add_all(
        StaffPhone(agency_id=agency_id, phone_hash=h, source=source, imported_at=now)
        for h in hashes
        if h not in known
    )
    session.flush()
    return StaffImport(added=len(hashes) - len(known), already_known=len(known))
