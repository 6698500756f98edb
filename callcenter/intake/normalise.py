"""Pure normalisation: one raw record (source values by dossier field) → a clean record or its errors.

No I/O and no clock: ``now`` is an argument, so the same input always gives the same output. Every
problem is reported as a :class:`FieldError` naming the field and the reason; the reason never
repeats the value (it may be a phone or ID number).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from callcenter.core.phones import PhoneError
from callcenter.intake.fastphone import to_e164
from callcenter.intake.mapping import MappingConfig, fold_word
from callcenter.intake.models import DossierStatus, Timeliness

MAX_CODE = 128
MAX_NAME = 256
MAX_TEXT = 2000
# Viet Nam has kept UTC+7 without daylight saving since 1975 and dates before 1990 are refused, so
# this fixed offset is exactly Asia/Ho_Chi_Minh for every accepted date — and several times cheaper
# than a ZoneInfo in the comparisons and formatting a million-row import does.
VN_OFFSET = timezone(timedelta(hours=7), "ICT")
# Seen in exports: NBSP and zero-width characters pasted from web pages.
_INVISIBLE = str.maketrans({"\u00a0": " ", "\u200b": None, "\ufeff": None})
NUL_REASON = "contains a NUL character (a broken export?)"


@dataclass(frozen=True, slots=True)
class FieldError:
    """Why a record cannot be imported: the dossier field at fault and a reason without the value."""

    field: str
    reason: str


# Not frozen: a frozen dataclass's __init__ costs a setattr call per field, a million times over.
@dataclass(slots=True)
class DossierRecord:
    """A validated dossier in plain text, ready to be sealed (encrypted) and stored."""

    code: str
    submitter_name: str
    phone_e164: str
    phone_kind: str
    national_id: str | None
    is_organisation: bool
    agency_code: str
    agency_name: str
    field_code: str
    field_name: str
    procedure_name: str | None
    received_at: datetime
    due_at: datetime | None
    returned_at: datetime | None
    status: DossierStatus
    timeliness: Timeliness
    source_updated_at: datetime | None


@dataclass(frozen=True)
class KnownReferences:
    """Codes of the agencies and fields already stored, by folded name (see ``fold_word``).

    An export that names an agency but gives no code must land on the agency the API sync (or an
    earlier file) stored under its real code, not create a second "Sở Y tế" with a code derived from
    the name: the report would list the agency twice, each copy with its own N and minimum sample.
    A name that two stored agencies share is left out: which one it means cannot be told.
    """

    agencies: Mapping[str, str] = dataclass_field(default_factory=dict)
    fields: Mapping[str, str] = dataclass_field(default_factory=dict)

    @staticmethod
    def by_name(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
        """Folded name → code from (code, name) pairs, without the names several codes share."""
        found: dict[str, str | None] = {}
        for code, name in pairs:
            key = fold_word(" ".join(name.split()))
            found[key] = code if found.get(key, code) == code else None
        return {k: v for k, v in found.items() if v is not None}


class Rules:
    """The parts of a mapping that normalisation needs, precomputed once per import."""

    def __init__(self, mapping: MappingConfig, *, known: KnownReferences | None = None) -> None:
        self.known = known or KnownReferences()
        self.statuses = mapping.status_lookup()
        self.booleans = mapping.boolean_lookup()
        # Distinct status and yes/no spellings in one source are few: remember their folded form.
        self._status_cache: dict[str, DossierStatus | None] = {}
        self._bool_cache: dict[str, bool | None] = {}
        self._reference_cache: dict[tuple[str, Any, Any], tuple[str, str] | str | None] = {}

    def status(self, raw: str) -> DossierStatus | None:
        try:
            return self._status_cache[raw]
        except KeyError:
            found = self.statuses.get(fold_word(raw))
            if len(self._status_cache) < 10_000:
                self._status_cache[raw] = found
            return found

    def reference(self, kind: str, code: Any, name: Any) -> tuple[str, str] | str | None:
        """Agency or field (code, name) from either or both; ``None`` if both are empty, or a reason.

        ``kind`` is "agency" or "field". Given only a name, the code is that of the stored agency or
        field of that name (see :class:`KnownReferences`), else one derived from the name. A source
        has a few dozen agencies and fields, so the cleaned pair is cached per raw pair.
        """
        key = (kind, code, name)
        try:
            return self._reference_cache[key]
        except KeyError:
            pass
        clean_name = " ".join(_text(name).split())
        clean_code = _text(code)
        result: tuple[str, str] | str | None
        if not clean_name and not clean_code:
            result = None
        elif len(clean_name) > MAX_NAME or len(clean_code) > 64:
            result = "name or code too long"
        else:
            if not clean_code:
                known = self.known.agencies if kind == "agency" else self.known.fields
                clean_code = known.get(fold_word(clean_name)) or derive_code(clean_name)
            result = (clean_code, clean_name or clean_code)
        if len(self._reference_cache) < 10_000:
            self._reference_cache[key] = result
        return result

    def boolean(self, raw: str) -> bool | None:
        try:
            return self._bool_cache[raw]
        except KeyError:
            found = self.booleans.get(fold_word(raw))
            if len(self._bool_cache) < 10_000:
                self._bool_cache[raw] = found
            return found


def derive_timeliness(
    *, due: datetime | None, returned: datetime | None, now: datetime, cancelled: bool = False
) -> Timeliness:
    """On time, late (returned after due), overdue (past due, still in process) or pending.

    A cancelled dossier that was never returned is neither pending nor overdue: it will not be
    returned, so it has no deadline left to meet or miss (``Timeliness.CANCELLED``).
    """
    if returned is not None:
        return Timeliness.LATE if due is not None and returned > due else Timeliness.ON_TIME
    if cancelled:
        return Timeliness.CANCELLED
    if due is not None and now > due:
        return Timeliness.OVERDUE
    return Timeliness.PENDING


_DMY = re.compile(
    r"(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})(?:[ T]+(\d{1,2})[:h](\d{2})(?::(\d{2})(?:\.\d+)?)?)?"
)


class DateFormatError(ValueError):
    pass


def parse_datetime(raw: str, *, end_of_day: bool = False) -> datetime:
    """Parse dd/mm/yyyy[ HH:MM[:SS]] or ISO 8601; a naive time is in Asia/Ho_Chi_Minh.

    A bare date means the start of that day, or its last instant with ``end_of_day`` (a due date
    "15/03/2025" allows returning the result at any time on the 15th).
    """
    text = raw.strip()
    try:
        # Fast path for the fixed-width forms (most exports): let the C ISO parser do the work.
        size = len(text)
        if size == 16 and text[2] == "/" and text[5] == "/" and text[10] == " " and text[13] == ":":
            value = datetime.fromisoformat(f"{text[6:10]}-{text[3:5]}-{text[0:2]}T{text[11:16]}")
            return value.replace(tzinfo=VN_OFFSET)
        if size == 10 and text[2] == "/" and text[5] == "/" and text[6:].isdigit():
            return _bare_date(date.fromisoformat(f"{text[6:10]}-{text[3:5]}-{text[0:2]}"), end_of_day)
        if size >= 16 and text[4] == "-" and text[10] in "T ":
            value = datetime.fromisoformat(text)
            return value if value.tzinfo is not None else value.replace(tzinfo=VN_OFFSET)
    except ValueError as exc:
        raise DateFormatError(f"not a real date or time ({exc})") from exc
    match = _DMY.fullmatch(text)
    try:
        if match is not None:
            day, month, year, hour, minute, second = match.groups()
            if hour is None:
                return _bare_date(date(int(year), int(month), int(day)), end_of_day)
            return datetime(
                int(year), int(month), int(day), int(hour), int(minute), int(second or 0), tzinfo=VN_OFFSET
            )
        if len(text) == 10 and text[4] == "-":
            return _bare_date(date.fromisoformat(text), end_of_day)
    except ValueError as exc:
        raise DateFormatError(f"not a real date or time ({exc})") from exc
    raise DateFormatError("unrecognised date format (expected dd/mm/yyyy, dd/mm/yyyy HH:MM or ISO 8601)")


def _bare_date(day: date, end_of_day: bool) -> datetime:
    if end_of_day:
        return datetime.combine(day, time(23, 59, 59), tzinfo=VN_OFFSET)
    return datetime.combine(day, time(0, 0), tzinfo=VN_OFFSET)


def _text(value: Any) -> str:
    """A cell as clean text: ``None`` → "", NBSP and zero-width characters removed, NFC, stripped."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if not text.isascii():
        # str.translate walks non-ASCII text in Python-level steps: test first, it rarely applies.
        if "\u00a0" in text or "\u200b" in text or "\ufeff" in text:
            text = text.translate(_INVISIBLE)
        if not unicodedata.is_normalized("NFC", text):
            text = unicodedata.normalize("NFC", text)
    return text.strip()


def clean_code(value: Any) -> str:
    """A dossier code as stored: text, trimmed, NFC (what duplicate detection compares)."""
    return _text(value)


def derive_code(name: str) -> str:
    """A stable code for an agency or field given only by name: ASCII, upper case, underscores."""
    folded = fold_word(name)
    slug = re.sub(r"[^a-z0-9]+", "_", folded).strip("_").upper()
    return slug[:64] or "UNKNOWN"


def normalise_record(
    values: Mapping[str, Any], *, rules: Rules, now: datetime
) -> DossierRecord | list[FieldError]:
    """Validate and normalise one record (dossier field → raw value) as of ``now``."""
    errors: list[FieldError] = []
    try:
        # One scan of the joined text (the common case: every value is text) instead of one per value.
        joined = "".join(values.values())
        suspect = "\ufffd" in joined or "\x00" in joined
    except TypeError:
        suspect = True
    if suspect:
        for key, value in values.items():
            if type(value) is not str:
                continue
            if "\ufffd" in value:
                # The file reader replaces undecodable bytes with U+FFFD: never store such text.
                errors.append(FieldError(key, "text is not valid UTF-8 (file saved in another encoding?)"))
            if "\x00" in value:
                # csv and JSON ("\u0000") pass a NUL through; PostgreSQL text cannot hold one (COPY
                # and query parameters refuse it), so it would abort the whole import.
                errors.append(FieldError(key, NUL_REASON))
        if errors:
            return errors

    code = clean_code(values.get("code"))
    if not code:
        errors.append(FieldError("code", "required value is missing"))
    elif len(code) > MAX_CODE:
        errors.append(FieldError("code", f"longer than {MAX_CODE} characters"))

    name = " ".join(_text(values.get("submitter_name")).split())
    if not name:
        errors.append(FieldError("submitter_name", "required value is missing"))
    elif len(name) > MAX_NAME:
        errors.append(FieldError("submitter_name", f"longer than {MAX_NAME} characters"))

    phone_raw = _text(values.get("phone"))
    phone_e164 = phone_kind = ""
    if not phone_raw:
        errors.append(FieldError("phone", "required value is missing"))
    elif len(phone_raw) > 40:
        errors.append(FieldError("phone", "too long to be a phone number"))
    else:
        try:
            phone = to_e164(phone_raw)
            phone_e164, phone_kind = phone.e164, phone.kind
        except PhoneError as exc:
            errors.append(FieldError("phone", str(exc)))

    national_id: str | None = None
    id_raw = _text(values.get("national_id"))
    if id_raw:
        digits = id_raw.replace(" ", "").replace(".", "")
        if not (digits.isdigit() and len(digits) in (9, 12)):
            errors.append(FieldError("national_id", "must be 12 digits (CCCD) or 9 digits (CMND)"))
        else:
            national_id = digits

    is_organisation = False
    org_raw = _text(values.get("is_organisation"))
    if org_raw:
        flag = rules.boolean(org_raw)
        if flag is None:
            errors.append(FieldError("is_organisation", "not a recognised yes/no word"))
        else:
            is_organisation = flag

    agency = rules.reference("agency", values.get("agency_code"), values.get("agency_name"))
    if agency is None:
        errors.append(FieldError("agency_name", "required value is missing (agency name or code)"))
    elif isinstance(agency, str):
        errors.append(FieldError("agency_name", agency))
    field = rules.reference("field", values.get("field_code"), values.get("field_name"))
    if field is None:
        errors.append(FieldError("field_name", "required value is missing (field name or code)"))
    elif isinstance(field, str):
        errors.append(FieldError("field_name", field))

    procedure = _text(values.get("procedure_name")) or None
    if procedure is not None and len(procedure) > MAX_TEXT:
        errors.append(FieldError("procedure_name", f"longer than {MAX_TEXT} characters"))

    received_at = _date_field(values.get("received_at"), "received_at", errors, required=True)
    due_at = _date_field(values.get("due_at"), "due_at", errors, end_of_day=True)
    returned_at = _date_field(values.get("returned_at"), "returned_at", errors)
    updated_at = _date_field(values.get("updated_at"), "updated_at", errors)
    if received_at is not None and returned_at is not None and returned_at < received_at - timedelta(days=1):
        errors.append(FieldError("returned_at", "result returned before the dossier was received"))
    if received_at is not None and received_at > now + timedelta(days=1):
        errors.append(FieldError("received_at", "date is in the future"))

    status_raw = _text(values.get("status"))
    status: DossierStatus | None = None
    if status_raw:
        status = rules.status(status_raw)
        if status is None:
            errors.append(FieldError("status", "unknown status word (add it to the mapping's statuses)"))
    # The return date is the fact the survey depends on; a status word that disagrees is a lag
    # of the source system's workflow, not a reason to drop the dossier.
    if returned_at is not None and status != DossierStatus.CANCELLED:
        status = DossierStatus.RETURNED
    elif status == DossierStatus.RETURNED:
        errors.append(FieldError("returned_at", "status says returned but the return date is missing"))
    elif status is None:
        status = DossierStatus.RECEIVED

    if errors or received_at is None or not isinstance(agency, tuple) or not isinstance(field, tuple):
        return errors
    return DossierRecord(
        code=code,
        submitter_name=name,
        phone_e164=phone_e164,
        phone_kind=phone_kind,
        national_id=national_id,
        is_organisation=is_organisation,
        agency_code=agency[0],
        agency_name=agency[1],
        field_code=field[0],
        field_name=field[1],
        procedure_name=procedure,
        received_at=received_at,
        due_at=due_at,
        returned_at=returned_at,
        status=status,
        timeliness=derive_timeliness(
            due=due_at, returned=returned_at, now=now, cancelled=status == DossierStatus.CANCELLED
        ),
        source_updated_at=updated_at,
    )


def accepted_datetime(raw: Any) -> datetime | None:
    """A date or time value as a record's date fields accept it; ``None`` if empty or refused.

    For a value outside a valid record (e.g. the ``updated_at`` of a refused one): the same
    parsing and the same 1990-2100 rule, without the errors.
    """
    return _date_field(raw, "", [])


def _date_field(
    raw: Any,
    key: str,
    errors: list[FieldError],
    *,
    required: bool = False,
    end_of_day: bool = False,
) -> datetime | None:
    if isinstance(raw, date):
        # XLSX cells and JSON decoders may already hold datetimes (naive = local time) or dates.
        if isinstance(raw, datetime):
            value = raw if raw.tzinfo is not None else raw.replace(tzinfo=VN_OFFSET)
        else:
            value = _bare_date(raw, end_of_day)
    else:
        text = _text(raw)
        if not text:
            if required:
                errors.append(FieldError(key, "required value is missing"))
            return None
        try:
            value = parse_datetime(text, end_of_day=end_of_day)
        except DateFormatError as exc:
            errors.append(FieldError(key, str(exc)))
            return None
    if not 1990 <= value.year <= 2100:
        errors.append(FieldError(key, "year outside 1990-2100"))
        return None
    return value
