"""Export files: CSV (UTF-8 with or without BOM, ``;`` or ``,``) and XLSX, read as streams.

A file in another encoding (Windows-1258, Latin-1 …) is refused with a message that says so, rather
than decoded into mojibake. Bytes that are not UTF-8 further into a file become U+FFFD and the row
is quarantined by the normaliser, so wrongly decoded text never reaches the database.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
from openpyxl.styles.numbers import is_datetime

from callcenter.intake.adapters.base import SourceRow
from callcenter.intake.errors import HeaderError, SourceFileError
from callcenter.intake.mapping import ColumnMap, MappingConfig, resolve_header
from callcenter.intake.normalise import FieldError

_SNIFF_BYTES = 64 * 1024
_HEADER_SEARCH_ROWS = 10  # non-empty rows of an XLSX sheet searched for its header
_VIETNAMESE_CP1258 = set("ăâđêôơưĂÂĐÊÔƠƯ")


def detect_csv_encoding(head: bytes, *, name: str) -> str:
    """``utf-8-sig`` or ``utf-8`` for the file starting with ``head``; otherwise a clear error."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise SourceFileError(f"{name}: the file is UTF-16; export it as 'CSV UTF-8' instead")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as exc:
        line = head[: exc.start].count(b"\n") + 1
        raise SourceFileError(
            f"{name}: not UTF-8 text (byte 0x{head[exc.start]:02x} at line {line}); it looks like "
            f"{_guess_encoding(head)}. Re-export it as 'CSV UTF-8' (Excel: Save As → CSV UTF-8); "
            "nothing was imported"
        ) from exc
    return "utf-8"


def _guess_encoding(head: bytes) -> str:
    try:
        text = head.decode("cp1258")
    except UnicodeDecodeError:
        return "a legacy 8-bit encoding"
    if any(ch in _VIETNAMESE_CP1258 for ch in text):
        return "Windows-1258 (cp1258, Vietnamese)"
    return "Latin-1 / Windows-1252"


def sniff_delimiter(first_line: str) -> str:
    """``;`` or ``,`` (or a tab): whichever splits the header line most, ignoring quoted text."""
    counts = {";": 0, ",": 0, "\t": 0}
    quoted = False
    for ch in first_line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


class CsvSource:
    """A CSV export, read row by row; the header is matched against the mapping first."""

    kind = "file"

    def __init__(self, path: Path | str, *, mapping: MappingConfig) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self._mapping = mapping
        self.header: tuple[str, ...] = ()

    def rows(self) -> Iterator[SourceRow]:
        name = self.path.name
        try:
            binary = self.path.open("rb")
        except OSError as exc:
            raise SourceFileError(f"{self.path}: cannot open ({exc.strerror})") from exc
        with binary:
            head = binary.read(_SNIFF_BYTES)
            if not head.strip().lstrip(codecs.BOM_UTF8).strip():
                raise SourceFileError(f"{name}: the file is empty (no header, no rows)")
            encoding = detect_csv_encoding(head, name=name)
            first_line = head.decode(encoding, errors="replace").splitlines()[0]
            binary.seek(0)
            # errors="replace": undecodable bytes further in become U+FFFD and that row is quarantined.
            stream = io.TextIOWrapper(binary, encoding=encoding, errors="replace", newline="")
            reader = csv.reader(stream, delimiter=sniff_delimiter(first_line))
            try:
                header = next(reader)
            except csv.Error as exc:
                raise SourceFileError(f"{name}: the header row cannot be read ({exc})") from exc
            columns = resolve_header(self._mapping, header, where=name)
            self.header = columns.header
            yield from self._data_rows(reader, columns)

    def _data_rows(self, reader: Any, columns: ColumnMap) -> Iterator[SourceRow]:
        number = 1  # spreadsheet numbering: the header is row 1
        extract = columns.extractor()
        while True:
            number += 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield SourceRow(f"row {number}", (), None, FieldError("row", f"unreadable CSV row ({exc})"))
                continue
            if not any(cells):
                continue  # a blank line is not a record
            yield SourceRow(f"row {number}", extract(cells), cells)

    def raw_record(self, raw: Any) -> Any:
        if isinstance(raw, list):
            extra = raw[len(self.header) :]
            record: dict[str, Any] = dict(zip(self.header, raw, strict=False))
            if extra:
                record["(extra cells)"] = extra
            return record
        return raw


class XlsxSource:
    """An XLSX export, streamed with openpyxl's read-only mode (the first sheet unless named)."""

    kind = "file"

    def __init__(self, path: Path | str, *, mapping: MappingConfig, sheet: str | None = None) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self._mapping = mapping
        self._sheet = sheet
        self.header: tuple[str, ...] = ()

    def rows(self) -> Iterator[SourceRow]:
        name = self.path.name
        try:
            workbook = openpyxl.load_workbook(self.path, read_only=True, data_only=True)
        except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
            raise SourceFileError(f"{name}: not a readable XLSX workbook ({exc})") from exc
        try:
            if self._sheet is not None and self._sheet not in workbook.sheetnames:
                raise SourceFileError(f"{name}: no sheet named '{self._sheet}' ({workbook.sheetnames})")
            sheet = workbook[self._sheet] if self._sheet else workbook.worksheets[0]
            number = 0
            columns: ColumnMap | None = None
            candidates = 0
            refused: HeaderError | None = None  # the error of the row naming the most columns
            for row in sheet.iter_rows():
                number += 1
                cells = [_cell_text(cell) for cell in row]
                if all(c in (None, "") for c in cells):
                    continue
                if columns is None:
                    # Exports often put a title (and a date line) above the header: the header is
                    # the first of the top non-empty rows that names the required columns. If none
                    # does, the error is the one of the row naming the most of them (never a data
                    # row's: it would quote a citizen's name and phone).
                    try:
                        columns = resolve_header(self._mapping, [str(c or "") for c in cells], where=name)
                    except HeaderError as exc:
                        if refused is None or exc.recognised > refused.recognised:
                            refused = exc
                        candidates += 1
                        if candidates >= _HEADER_SEARCH_ROWS:
                            raise refused from None
                        continue
                    self.header = columns.header
                    extract = columns.extractor()
                    continue
                yield SourceRow(f"row {number}", extract(cells), cells)
            if columns is None:
                if refused is not None:
                    raise refused
                raise SourceFileError(f"{name}: the sheet is empty (no header, no rows)")
        finally:
            workbook.close()

    def raw_record(self, raw: Any) -> Any:
        if isinstance(raw, list):
            return dict(zip(self.header, (str(v) if v is not None else None for v in raw), strict=False))
        return raw


def _cell_text(cell: Any) -> Any:
    """XLSX cell → what the normaliser reads: whole numbers lose their ``.0``; dates stay dates.

    A cell formatted as a date alone (``dd/mm/yyyy``) comes back from openpyxl as a datetime at
    midnight; it becomes a ``date``, so that a bare due date means the end of that day, exactly as
    the same text in a CSV does. A cell whose format shows a time keeps its datetime.
    """
    value = cell.value
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0) and is_datetime(getattr(cell, "number_format", None) or "") == "date":
            return value.date()
        return value
    if value is None or isinstance(value, str | dt.date):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def open_file_source(path: Path | str, *, mapping: MappingConfig) -> CsvSource | XlsxSource:
    """A connector for an export file, chosen by its extension (``.csv``, ``.txt``, ``.xlsx``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return XlsxSource(path, mapping=mapping)
    if suffix in (".csv", ".txt", ".tsv"):
        return CsvSource(path, mapping=mapping)
    if suffix == ".xls":
        raise SourceFileError(
            f"{path.name}: old .xls workbooks are not supported; save it as .xlsx or CSV UTF-8"
        )
    raise SourceFileError(f"{path.name}: unknown file type '{suffix}' (expected .csv or .xlsx)")
