"""Import survey results of the other channels (web, paper, independent) into ``survey_responses``.

The file is validated completely first; if any row is bad, :class:`ResultsRejected` lists every row and
field at fault and nothing is written. A re-import skips the answers already known (unique per channel
and ``external_ref``). The column mapping is YAML (``results_mapping.default.yaml``, Vietnamese headers).
Every newly imported "not satisfied" answer gets its alerts in the same transaction, however old it is:
the periodic alert scan looks back only 48 hours, and a paper form is often entered weeks later.
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException
from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.analysis import alerts
from callcenter.analysis.settings import AnalysisSettings
from callcenter.core.clock import VN_TZ
from callcenter.core.errors import ValidationError
from callcenter.core.phones import PhoneError, normalise_phone
from callcenter.core.pii import PiiCipher, mask_digit_runs
from callcenter.intake.adapters.files import detect_csv_encoding, sniff_delimiter
from callcenter.intake.errors import SourceFileError
from callcenter.intake.models import Agency, Dossier, Field
from callcenter.ivr.models import ResponseChannel, ResponseReason, ResponseStatus, SurveyResponse

DEFAULT_MAPPING = Path(__file__).with_name("results_mapping.default.yaml")
IMPORT_CHANNELS = (ResponseChannel.WEB.value, ResponseChannel.PAPER.value, ResponseChannel.INDEPENDENT.value)
REQUIRED = ("external_ref", "agency_code", "answered_at", "satisfaction")


class Columns(BaseModel):
    model_config = ConfigDict(extra="forbid")
    external_ref: str
    agency_code: str
    field_code: str | None = None
    dossier_code: str | None = None
    answered_at: str
    satisfaction: str
    reasons: str | None = None
    comment: str | None = None
    phone: str | None = None


class Values(BaseModel):
    model_config = ConfigDict(extra="forbid")
    satisfied: list[str]
    unsatisfied: list[str]


class ResultsMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")
    columns: Columns
    values: Values


def load_mapping(path: Path | None = None) -> ResultsMapping:
    """Read and validate a column mapping; errors name the file and the key at fault."""
    path = path or DEFAULT_MAPPING
    try:
        return ResultsMapping.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        raise ValidationError(f"{path}: cannot read the mapping ({exc})", field="mapping") from exc
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValidationError(f"{path}: {first['msg']}", field=f"mapping.{where}") from exc


@dataclass(frozen=True)
class RowError:
    row: int
    field: str
    message: str

    def __str__(self) -> str:
        if not self.field:
            return f"row {self.row}: {self.message}"
        return f"row {self.row}, field '{self.field}': {self.message}"


class ResultsRejected(ValidationError):
    """The file has bad rows; nothing was imported."""

    def __init__(self, errors: Sequence[RowError]) -> None:
        self.errors = list(errors)
        shown = "; ".join(str(e) for e in self.errors[:20])
        more = f" (and {len(self.errors) - 20} more)" if len(self.errors) > 20 else ""
        super().__init__(f"{len(self.errors)} bad row(s), nothing imported: {shown}{more}")


@dataclass(frozen=True)
class ImportSummary:
    rows: int
    inserted: int
    already_imported: int
    alerts: int = 0  # alerts rows raised for the new "not satisfied" answers


def read_csv_rows(path: Path) -> list[list[Any]]:
    """Every row of a CSV in UTF-8 (BOM or not); another encoding or a binary file is refused by name.

    The refusals are worded as the dossier import words them (``intake.adapters.files``), and say
    what to save the file as.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"{path.name}: cannot read the file ({exc.strerror})", field="file") from exc
    if not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and b"\x00" in data:
        # UTF-16 without a byte-order mark, or a binary file (an .xls renamed .csv): csv cannot read it.
        raise ValidationError(
            f"{path.name}: not a CSV text file (it contains NUL bytes: UTF-16 text, or a workbook "
            "saved under a .csv name?); save it as 'CSV UTF-8' (Excel: Save As → CSV UTF-8)",
            field="file",
        )
    try:
        text = data.decode(detect_csv_encoding(data, name=path.name))
    except SourceFileError as exc:
        raise ValidationError(str(exc), field="file") from exc
    except UnicodeDecodeError as exc:  # only a multi-byte character cut off at the very end is left
        raise ValidationError(
            f"{path.name}: not UTF-8 text (the file ends inside a character); "
            "save it again as 'CSV UTF-8' (Excel: Save As → CSV UTF-8)",
            field="file",
        ) from exc
    text = text.lstrip("\ufeff")
    # Excel in a Vietnamese locale saves CSV with ";": the delimiter is sniffed from the header line,
    # as the dossier import does.
    delimiter = sniff_delimiter(text.split("\n", 1)[0])
    try:
        return [list(r) for r in csv.reader(io.StringIO(text), delimiter=delimiter)]
    except csv.Error as exc:
        raise ValidationError(f"{path.name}: not a readable CSV file ({exc})", field="file") from exc


def read_xlsx_rows(path: Path) -> list[list[Any]]:
    """Every row of the first sheet of an XLSX; a file that is no XLSX workbook is refused by name."""
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        raise ValidationError(
            f"{path.name}: not a readable XLSX workbook ({exc}); an old .xls workbook renamed .xlsx? "
            "Save it as .xlsx (Excel Workbook) or as 'CSV UTF-8'",
            field="file",
        ) from exc
    try:
        return [list(r) for r in book.worksheets[0].iter_rows(values_only=True)]
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise ValidationError(f"{path.name}: the XLSX workbook is damaged ({exc})", field="file") from exc
    finally:
        book.close()


def read_table(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(row number as the spreadsheet shows it, {header: value}) for every non-empty data row."""
    if path.suffix.lower() == ".xlsx":
        raw = read_xlsx_rows(path)
    elif path.suffix.lower() == ".csv":
        raw = read_csv_rows(path)
    else:
        raise ValidationError(f"{path.name}: expected a .csv or .xlsx file", field="file")
    if not raw:
        raise ValidationError(f"{path.name}: the file is empty", field="file")
    headers = [str(h).strip() if h is not None else "" for h in raw[0]]
    rows = []
    for number, values in enumerate(raw[1:], start=2):
        if all(v is None or str(v).strip() == "" for v in values):
            continue
        rows.append((number, {h: values[i] if i < len(values) else None for i, h in enumerate(headers) if h}))
    return rows


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def parse_local_time(value: Any) -> datetime:
    """dd/mm/yyyy [HH:MM[:SS]] in Da Nang time, ISO 8601 (with or without zone), or a spreadsheet date."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=VN_TZ)
    text = _text(value)
    for fmt in ("%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=VN_TZ)
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        # The value is not quoted: a shifted column puts a name or a phone here.
        raise ValueError("is not a date (use dd/mm/yyyy HH:MM)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=VN_TZ)


# Reports cover the years 2000–2100 (analysis.periods): an answer dated earlier would never be shown.
EARLIEST_YEAR = 2000


def _quote(value: str) -> str:
    """A cell quoted in an error message: phone and ID numbers masked, long text cut.

    Web and paper results are typed by hand; a citizen's CCCD in the dossier-code column or a
    shifted row is common, and the messages reach the terminal, the API's answer and the logs.
    """
    masked = mask_digit_runs(value)
    return f"'{masked[:40]}…'" if len(masked) > 40 else f"'{masked}'"


@dataclass(frozen=True)
class _Parsed:
    external_ref: str
    agency_id: int
    field_id: int | None
    dossier_id: int | None
    answered_at: datetime
    satisfied: bool
    reasons: tuple[int, ...]
    comment: str | None
    phone_hash: str | None


def import_results(
    session: Session,
    *,
    rows: Sequence[tuple[int, dict[str, Any]]],
    channel: str,
    cipher: PiiCipher,
    now: datetime,
    reason_codes: Sequence[int],
    alert_settings: AnalysisSettings,
    mapping: ResultsMapping | None = None,
) -> ImportSummary:
    """Validate every row, then insert the new answers and alert their agencies of the unsatisfied ones.

    Any bad row rejects the whole file.
    """
    if channel not in IMPORT_CHANNELS:
        raise ValidationError(
            f"channel must be one of {', '.join(IMPORT_CHANNELS)}, not '{channel}'", field="channel"
        )
    mapping = mapping or load_mapping()
    cols = mapping.columns
    satisfied_values = {v.casefold() for v in mapping.values.satisfied}
    unsatisfied_values = {v.casefold() for v in mapping.values.unsatisfied}
    agencies = {code: aid for aid, code in session.execute(select(Agency.id, Agency.code))}
    fields = {code: fid for fid, code in session.execute(select(Field.id, Field.code))}
    dossier_codes = {_text(r.get(cols.dossier_code)) for _n, r in rows} - {""} if cols.dossier_code else set()
    dossiers: dict[str, list[tuple[int, int, int]]] = {}
    timeliness_of: dict[int, str | None] = {}  # copied onto the response (its stratum in the summaries)
    if dossier_codes:
        for did, code, aid, fid, timeliness in session.execute(
            select(Dossier.id, Dossier.code, Dossier.agency_id, Dossier.field_id, Dossier.timeliness).where(
                Dossier.code.in_(dossier_codes)
            )
        ):
            dossiers.setdefault(code, []).append((did, aid, fid))
            timeliness_of[did] = timeliness
    valid_reasons = set(reason_codes)

    errors: list[RowError] = []
    parsed: list[_Parsed] = []
    seen_refs: dict[str, int] = {}
    if not rows:
        # A header alone, or a file whose lines all failed to parse into rows: nothing to import is
        # not a success a scripted import may take for one.
        raise ResultsRejected([RowError(2, "", "the file has no answer rows")])
    if rows:
        present = set(rows[0][1])
        for key in REQUIRED:
            header = getattr(cols, key)
            if header not in present:
                errors.append(RowError(1, header, f"column '{header}' ({key}) is missing from the header"))
        if errors:
            raise ResultsRejected(errors)
    for number, row in rows:
        row_errors: list[RowError] = []

        def bad(
            key: str, message: str, *, number: int = number, row_errors: list[RowError] = row_errors
        ) -> None:
            row_errors.append(RowError(number, getattr(cols, key) or key, message))

        ref = _text(row.get(cols.external_ref))
        if not ref:
            bad("external_ref", "is empty")
        elif ref in seen_refs:
            bad("external_ref", f"{_quote(ref)} repeats row {seen_refs[ref]}")
        else:
            seen_refs[ref] = number
        agency_id = agencies.get(_text(row.get(cols.agency_code)))
        if agency_id is None:
            bad("agency_code", f"unknown agency code {_quote(_text(row.get(cols.agency_code)))}")
        field_id = None
        if cols.field_code and _text(row.get(cols.field_code)):
            field_id = fields.get(_text(row.get(cols.field_code)))
            if field_id is None:
                bad("field_code", f"unknown field code {_quote(_text(row.get(cols.field_code)))}")
        dossier_id = None
        if cols.dossier_code and _text(row.get(cols.dossier_code)):
            code = _text(row.get(cols.dossier_code))
            matches = dossiers.get(code, [])
            if len(matches) != 1:
                problem = "is unknown" if not matches else "is ambiguous"
                bad("dossier_code", f"dossier {_quote(code)} {problem}")
            else:
                dossier_id, dossier_agency, dossier_field = matches[0]
                if agency_id is not None and dossier_agency != agency_id:
                    bad("dossier_code", f"dossier {_quote(code)} belongs to another agency")
                field_id = field_id or dossier_field
        try:
            answered_at = parse_local_time(row.get(cols.answered_at))
            if answered_at > now:
                bad("answered_at", "is in the future")
            elif answered_at.year < EARLIEST_YEAR:  # a typo (0099 for 2026): no report would show it
                bad("answered_at", f"year {answered_at.year} is before {EARLIEST_YEAR}")
        except ValueError as exc:
            bad("answered_at", str(exc))
            answered_at = now
        verdict = _text(row.get(cols.satisfaction)).casefold()
        satisfied = verdict in satisfied_values
        if not satisfied and verdict not in unsatisfied_values:
            verdict_cell = _quote(_text(row.get(cols.satisfaction)))
            bad("satisfaction", f"{verdict_cell} is neither satisfied nor unsatisfied")
        reasons: tuple[int, ...] = ()
        if cols.reasons and _text(row.get(cols.reasons)):
            try:
                reasons = tuple(
                    sorted(
                        {
                            int(p)
                            for p in _text(row.get(cols.reasons)).replace(",", ";").split(";")
                            if p.strip()
                        }
                    )
                )
            except ValueError:
                bad("reasons", f"{_quote(_text(row.get(cols.reasons)))} is not a list of reason codes")
            if set(reasons) - valid_reasons:
                bad("reasons", f"unknown reason code(s) {sorted(set(reasons) - valid_reasons)}")
            if satisfied and reasons:
                bad("reasons", "a satisfied answer has no reasons for dissatisfaction")
        phone_hash = None
        if cols.phone and _text(row.get(cols.phone)):
            try:
                phone_hash = cipher.phone_hash(normalise_phone(_text(row.get(cols.phone))).e164)
            except PhoneError as exc:
                bad("phone", str(exc))
        comment = _text(row.get(cols.comment)) if cols.comment else ""
        if row_errors:
            errors.extend(row_errors)
            continue
        assert agency_id is not None
        parsed.append(
            _Parsed(
                ref,
                agency_id,
                field_id,
                dossier_id,
                answered_at,
                satisfied,
                reasons,
                comment or None,
                phone_hash,
            )
        )
    if errors:
        raise ResultsRejected(errors)

    known = set()
    refs = [p.external_ref for p in parsed]
    for start in range(0, len(refs), 1000):
        known |= set(
            session.scalars(
                select(SurveyResponse.external_ref).where(
                    SurveyResponse.channel == channel,
                    SurveyResponse.external_ref.in_(refs[start : start + 1000]),
                )
            )
        )
    new = [p for p in parsed if p.external_ref not in known]
    unsatisfied: list[SurveyResponse] = []
    for p in new:
        response = SurveyResponse(
            channel=channel,
            external_ref=p.external_ref,
            dossier_id=p.dossier_id,
            agency_id=p.agency_id,
            field_id=p.field_id,
            dossier_timeliness=timeliness_of.get(p.dossier_id) if p.dossier_id else None,
            phone_hash=p.phone_hash,
            questionnaire_version=f"import-{channel}",
            status=ResponseStatus.COMPLETED.value,
            satisfied=p.satisfied,
            answered_via=channel,
            comment_enc=cipher.encrypt_optional(p.comment),
            comment_status="done" if p.comment else "none",
            started_at=p.answered_at,
            answered_at=p.answered_at,
            completed_at=p.answered_at,
        )
        response.reasons = [ResponseReason(reason_code=c, source=channel) for c in p.reasons]
        session.add(response)
        if not p.satisfied:
            unsatisfied.append(response)
    session.flush()
    raised = 0
    for response in unsatisfied:
        raised += len(alerts.raise_alerts(session, response_id=response.id, now=now, settings=alert_settings))
    return ImportSummary(
        rows=len(rows), inserted=len(new), already_imported=len(parsed) - len(new), alerts=raised
    )
