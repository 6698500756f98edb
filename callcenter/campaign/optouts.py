"""Importing the operators' do-not-call list (CSV of phone numbers) into the shared opt-out registry."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from callcenter.campaign.lists import replenish
from callcenter.campaign.models import CallTarget, TargetState
from callcenter.core.models import OptOut
from callcenter.core.phones import PhoneError, normalise_phone
from callcenter.core.pii import PiiCipher, mask_phone

PHONE_HEADERS = ("phone", "phone_number", "so_dien_thoai", "số điện thoại", "sdt", "sđt", "dien_thoai")
SOURCE = "operator_list"


@dataclass
class OptOutImport:
    rows: int = 0
    added: int = 0
    already_listed: int = 0
    errors: list[str] = field(default_factory=list)  # "row 7: not a valid Vietnamese phone number (…)"


def import_opt_outs(
    session: Session, *, text: str, cipher: PiiCipher, now: datetime, note: str | None = None
) -> OptOutImport:
    """Add every valid phone of a CSV (one per row; a header naming the phone column is optional).

    Bad rows are reported by their row number in the file and skipped; good rows are imported. The
    numbers are stored only as keyed hashes. Queued calls to these phones are closed at once.
    """
    result = OptOutImport()
    reader = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    column = 0
    start = 0
    if reader and reader[0] and not any(ch.isdigit() for ch in "".join(reader[0])):
        header = [cell.strip().lower() for cell in reader[0]]
        matches = [i for i, name in enumerate(header) if name in PHONE_HEADERS]
        if not matches:
            result.errors.append(
                f"row 1: no phone column in the header (expected one of: {', '.join(PHONE_HEADERS)})"
            )
            return result
        column, start = matches[0], 1
    hashes: dict[str, int] = {}
    for index, cells in enumerate(reader[start:], start=start + 1):
        if not cells or not any(cell.strip() for cell in cells):
            continue  # blank line
        result.rows += 1
        raw = cells[column].strip() if column < len(cells) else ""
        try:
            phone = normalise_phone(raw)
        except PhoneError as exc:
            result.errors.append(f"row {index}: {exc} ({mask_phone(raw) or 'empty'})")
            continue
        hashes.setdefault(cipher.phone_hash(phone.e164), index)
    if not hashes:
        return result
    existing = set(session.scalars(select(OptOut.phone_hash).where(OptOut.phone_hash.in_(hashes))))
    new = [h for h in hashes if h not in existing]
    result.already_listed = result.rows - len(result.errors) - len(new)
    if new:
        session.execute(
            insert(OptOut),
            [{"phone_hash": h, "source": SOURCE, "note": note, "created_at": now} for h in new],
        )
        queued = (CallTarget.phone_hash.in_(new), CallTarget.state == TargetState.QUEUED.value)
        touched = session.execute(
            select(CallTarget.campaign_id, CallTarget.agency_id).where(*queued).distinct()
        ).all()
        session.execute(
            update(CallTarget)
            .where(*queued)
            .values(state=TargetState.OPTED_OUT.value, next_attempt_at=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        for campaign_id, agency_id in sorted(touched):
            replenish(session, campaign_id=campaign_id, agency_id=agency_id, now=now)
    result.added = len(new)
    session.flush()
    return result
