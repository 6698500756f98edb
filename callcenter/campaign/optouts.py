"""Importing the operators' do-not-call list (CSV of phone numbers) into the shared opt-out registry."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from callcenter.campaign.lists import replenish
from callcenter.campaign.models import CallTarget, TargetState
from callcenter.core.errors import ValidationError
from callcenter.core.models import OptOut
from callcenter.core.phones import PhoneError, normalise_phone
from callcenter.core.pii import PiiCipher, mask_name, mask_phone
from callcenter.intake.adapters.files import detect_csv_encoding, sniff_delimiter
from callcenter.intake.errors import SourceFileError

# The headers a phone column goes by in the lists agencies and operators send, compared after
# :func:`header_key`. Shared with the staff-phone import (``callcenter.analysis.integrity``).
PHONE_HEADERS = (
    "số điện thoại",
    "so dien thoai",
    "điện thoại",
    "dien thoai",
    "số đt",
    "so dt",
    "sđt",
    "sdt",
    "phone",
    "phone number",
)
SOURCE = "operator_list"


def header_key(text: str) -> str:
    """A header cell as :data:`PHONE_HEADERS` spells it: NFC, lower case, ``_``/``.``/spaces as one space."""
    return re.sub(r"[\s_.]+", " ", unicodedata.normalize("NFC", text).casefold()).strip()


def is_phone_header(text: str) -> bool:
    """Whether a header cell names the phone column ("Số điện thoại", "Điện thoại", "Số ĐT", "SĐT" …)."""
    return header_key(text) in PHONE_HEADERS


@dataclass
class OptOutImport:
    rows: int = 0
    added: int = 0
    already_listed: int = 0
    errors: list[str] = field(default_factory=list)  # "row 7: not a valid Vietnamese phone number (…)"

    @property
    def failed(self) -> bool:
        """Not one phone taken (header refused, every row bad, or no row at all): not applied."""
        return self.added == 0 and self.already_listed == 0


def decode_list(data: bytes, *, name: str) -> str:
    """A do-not-call file's text; a workbook or a file in another encoding is refused with advice."""
    if data.startswith(b"PK\x03\x04") or data.startswith(b"\xd0\xcf\x11\xe0"):
        raise ValidationError(
            f"{name}: an Excel workbook, not a CSV file; save it as 'CSV UTF-8' (Excel: Save As → "
            "CSV UTF-8) and import that",
            field="file",
        )
    try:
        return data.decode(detect_csv_encoding(data[:65536], name=name))
    except SourceFileError as exc:
        raise ValidationError(str(exc), field="file") from None
    except UnicodeDecodeError:
        raise ValidationError(
            f"{name}: not UTF-8 text; save it as 'CSV UTF-8' (Excel: Save As → CSV UTF-8)", field="file"
        ) from None


def _initials(cell: str) -> str:
    # A first row without digits may be data, not a header (a name): never echo it whole.
    return mask_name(cell) or "(trống)"


def import_opt_outs(
    session: Session, *, text: str, cipher: PiiCipher, now: datetime, note: str | None = None
) -> OptOutImport:
    """Add every valid phone of a CSV (one per row; a header naming the phone column is optional).

    Bad rows are reported by their row number in the file and skipped; good rows are imported. The
    numbers are stored only as keyed hashes. Queued calls to these phones are closed at once.
    """
    result = OptOutImport()
    text = text.lstrip("\ufeff")
    # Excel in a Vietnamese locale saves CSV with ";": sniffed from the first line, as the intake does.
    reader = list(csv.reader(io.StringIO(text), delimiter=sniff_delimiter(text.split("\n", 1)[0])))
    column = 0
    start = 0
    if reader and reader[0] and not any(ch.isdigit() for ch in "".join(reader[0])):
        matches = [i for i, name in enumerate(reader[0]) if is_phone_header(name)]
        if not matches:
            result.errors.append(
                "row 1: no phone column in the header (expected one of: "
                f"{', '.join(PHONE_HEADERS)}; found, as initials: {', '.join(map(_initials, reader[0]))})"
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
        if result.rows == 0:
            result.errors.append("no phone number in the file (it is empty, or a header alone)")
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
