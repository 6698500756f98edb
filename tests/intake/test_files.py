"""File connectors and whole-file imports: encodings, delimiters, XLSX, every kind of bad row."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import openpyxl
import pytest
from intake_helpers import HEADER, NOW, CsvWriter, good_row
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callcenter.core.clock import VN_TZ
from callcenter.core.pii import PiiCipher
from callcenter.intake.adapters.files import CsvSource, XlsxSource, open_file_source, sniff_delimiter
from callcenter.intake.errors import MappingError, SourceFileError
from callcenter.intake.importer import ImportResult, run_import
from callcenter.intake.mapping import MappingConfig
from callcenter.intake.models import Dossier, DossierStatusHistory, ImportRun, QuarantinedRecord


def _import(
    session: Session, path: Path, mapping: MappingConfig, cipher: PiiCipher, **kw: object
) -> ImportResult:
    return run_import(
        session,
        connector=open_file_source(path, mapping=mapping),
        source="file:test",
        mapping=mapping,
        cipher=cipher,
        now=NOW,
        **kw,  # type: ignore[arg-type]
    )


def _quarantine(session: Session) -> list[tuple[str, str | None, str]]:
    rows = session.scalars(select(QuarantinedRecord).order_by(QuarantinedRecord.id)).all()
    return [(r.row_ref, r.field, r.reason) for r in rows]


@pytest.mark.parametrize(
    ("delimiter", "encoding"), [(",", "utf-8"), (";", "utf-8"), (";", "utf-8-sig"), (",", "utf-8-sig")]
)
def test_csv_utf8_with_or_without_bom_comma_or_semicolon(
    write_csv_file: CsvWriter, mapping: MappingConfig, delimiter: str, encoding: str
) -> None:
    path = write_csv_file(
        [good_row("HS-1"), good_row("HS-2", submitter_name="Công ty TNHH Sông Hàn, chi nhánh 2")],
        delimiter=delimiter,
        encoding=encoding,
    )
    rows = list(CsvSource(path, mapping=mapping).rows())
    assert [r.ref for r in rows] == ["row 2", "row 3"]
    assert rows[0].as_dict()["code"] == "HS-1"
    assert rows[1].as_dict()["submitter_name"] == "Công ty TNHH Sông Hàn, chi nhánh 2"
    assert rows[0].as_dict()["received_at"] == "02/01/2026 08:30"


def test_delimiter_sniffing_ignores_quoted_text() -> None:
    assert sniff_delimiter('"Mã, hồ sơ";"Họ tên";"SĐT"') == ";"
    assert sniff_delimiter("Mã hồ sơ,Họ tên,SĐT") == ","
    assert sniff_delimiter("Mã hồ sơ\tHọ tên") == "\t"


@pytest.mark.parametrize(("encoding", "guess"), [("cp1258", "Windows-1258"), ("latin-1", "Latin-1")])
def test_wrong_encoding_is_reported_not_mojibaked(
    write_csv_file: CsvWriter, mapping: MappingConfig, encoding: str, guess: str
) -> None:
    header = ["Ma ho so", "Ho va ten nguoi nop", "So dien thoai", "Co quan", "Linh vuc", "Ngay tiep nhan"]
    row = [
        "HS-1",
        "Lê Văn Đông" if encoding == "cp1258" else "José Müller",
        "0905123456",
        "STP",
        "HT",
        "1/1/2026",
    ]
    path = write_csv_file([row], encoding=encoding, header=header)
    with pytest.raises(SourceFileError, match=f"not UTF-8 text .* looks like {guess}.*nothing was imported"):
        list(CsvSource(path, mapping=mapping).rows())


def test_empty_and_header_only_files(
    write_csv_file: CsvWriter, mapping: MappingConfig, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(SourceFileError, match=r"empty\.csv: the file is empty"):
        list(CsvSource(empty, mapping=mapping).rows())
    bom_only = tmp_path / "bom.csv"
    bom_only.write_bytes(b"\xef\xbb\xbf\r\n")
    with pytest.raises(SourceFileError, match="empty"):
        list(CsvSource(bom_only, mapping=mapping).rows())
    assert list(CsvSource(write_csv_file([]), mapping=mapping).rows()) == []


def test_missing_column_fails_the_file_with_its_name(
    write_csv_file: CsvWriter, mapping: MappingConfig
) -> None:
    header = [h for h in HEADER if h != "Ngày tiếp nhận"]
    path = write_csv_file([], header=header)
    with pytest.raises(MappingError, match=r'export\.csv: required column.* "Ngày tiếp nhận"'):
        list(CsvSource(path, mapping=mapping).rows())


def test_unknown_file_types(tmp_path: Path, mapping: MappingConfig) -> None:
    with pytest.raises(SourceFileError, match="unknown file type"):
        open_file_source(tmp_path / "a.pdf", mapping=mapping)
    with pytest.raises(SourceFileError, match=r"\.xls workbooks are not supported"):
        open_file_source(tmp_path / "a.xls", mapping=mapping)
    fake = tmp_path / "fake.xlsx"
    fake.write_text("not a zip")
    with pytest.raises(SourceFileError, match="not a readable XLSX"):
        list(XlsxSource(fake, mapping=mapping).rows())


def test_xlsx_with_typed_cells(
    tmp_path: Path, mapping: MappingConfig, db_session: Session, cipher: PiiCipher
) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["Báo cáo hồ sơ đã trả kết quả"])  # a title line above the header is common
    sheet.append(["Từ ngày 01/01/2026 đến ngày 31/01/2026", None, "Đơn vị: Sở Tư pháp"])
    sheet.append([])
    sheet.append(HEADER)
    row: list[object] = list(good_row("HS-X1"))
    row[2] = 905123456  # the phone became a number and lost its leading zero
    row[9] = datetime(2026, 1, 2, 8, 30)  # a real date-and-time cell (naive: local time)
    row[10] = datetime(2026, 1, 9)  # the due date, a date cell: the whole of 9 January
    row[11] = datetime(2026, 1, 9, 15, 0)  # returned on the due day: on time
    sheet.append(row)
    sheet.append(list(good_row("HS-X2", phone="garbage")))
    row = list(good_row("HS-X3"))
    row[9] = datetime(1899, 12, 30)  # Excel's day zero: an empty date cell gone wrong
    sheet.append(row)
    for number in (5, 7):
        sheet.cell(row=number, column=10).number_format = "dd/mm/yyyy hh:mm"
        sheet.cell(row=number, column=11).number_format = "dd/mm/yyyy"
        sheet.cell(row=number, column=12).number_format = "dd/mm/yyyy hh:mm"
    path = tmp_path / "export.xlsx"
    workbook.save(path)

    result = _import(db_session, path, mapping, cipher)
    assert (result.counts.inserted, result.counts.quarantined) == (1, 2)
    stored = db_session.scalars(select(Dossier)).one()
    assert cipher.decrypt(stored.phone_enc) == "+84905123456"
    assert stored.received_at == datetime(2026, 1, 2, 8, 30, tzinfo=VN_TZ)
    assert stored.due_at == datetime(2026, 1, 9, 23, 59, 59, tzinfo=VN_TZ)
    assert stored.timeliness == "on_time"  # as from the same dates in a CSV
    assert [q[:2] for q in _quarantine(db_session)] == [("row 6", "phone"), ("row 7", "received_at")]


def test_xlsx_without_a_recognisable_header_names_what_is_missing(
    tmp_path: Path, mapping: MappingConfig
) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["Báo cáo hồ sơ"])
    sheet.append([h for h in HEADER if h != "Ngày tiếp nhận"])  # the likeliest header, one column short
    sheet.append(list(good_row("HS-1")))
    path = tmp_path / "export.xlsx"
    workbook.save(path)
    with pytest.raises(
        MappingError, match=r'export\.xlsx: required column.* "Ngày tiếp nhận".*Columns found: "Mã'
    ):
        list(XlsxSource(path, mapping=mapping).rows())


def test_a_header_error_never_quotes_a_data_row(
    tmp_path: Path, mapping: MappingConfig, write_csv_file: CsvWriter
) -> None:
    # An XLSX whose header lacks the phone column, then a record: the record names more cells, but
    # the error must come from the header (and quote it), never from the citizen's row.
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append([h if h != "Số điện thoại" else None for h in HEADER])
    sheet.append(list(good_row("HS-1")))
    path = tmp_path / "export.xlsx"
    workbook.save(path)
    with pytest.raises(MappingError) as caught:
        list(XlsxSource(path, mapping=mapping).rows())
    assert '"Số điện thoại"' in str(caught.value) and '"Mã hồ sơ"' in str(caught.value)
    assert "Nguyễn Thị Hoa" not in str(caught.value) and "0905" not in str(caught.value)
    # A CSV exported without its header row: its first line is a record.
    headless = write_csv_file([], header=good_row("HS-2"))
    with pytest.raises(MappingError, match="the row holds data, not column names") as caught:
        list(CsvSource(headless, mapping=mapping).rows())
    assert "Nguyễn Thị Hoa" not in str(caught.value) and "0905" not in str(caught.value)


def test_every_kind_of_bad_row_is_quarantined_and_the_rest_imported(
    write_csv_file: CsvWriter, mapping: MappingConfig, db_session: Session, cipher: PiiCipher
) -> None:
    rows = [
        good_row("HS-1"),
        good_row("HS-2", phone="không có số"),  # garbage phone
        good_row("HS-3", received_at="32/01/2026"),  # malformed date
        good_row("HS-1", submitter_name="Lê Văn Tám"),  # duplicate code in one file
        good_row("HS-4")[:5],  # a short row: the required columns are missing
        good_row("HS-5", submitter_name="x" * 300_000),  # a huge cell (the CSV field limit)
        ["", "", "", ""],  # blank line: not a record
        good_row("HS-6"),
    ]
    path = write_csv_file(rows)
    result = _import(db_session, path, mapping, cipher)
    assert (result.counts.inserted, result.counts.quarantined) == (2, 5)
    assert {d for (d,) in db_session.execute(select(Dossier.code))} == {"HS-1", "HS-6"}
    quarantine = _quarantine(db_session)
    by_row = {ref: (field, reason) for ref, field, reason in quarantine}
    assert by_row["row 3"][0] == "phone"
    assert by_row["row 4"][0] == "received_at"
    assert by_row["row 5"] == (
        "code",
        "code: duplicate dossier code in this import (first at row 2); this copy ignored",
    )
    assert "required value is missing" in by_row["row 6"][1]
    assert "field larger than field limit" in by_row["row 7"][1]
    run = db_session.scalars(select(ImportRun)).one()
    assert (run.rows_seen, run.inserted, run.quarantined, run.kind) == (7, 2, 5, "file")
    assert run.finished_at is not None
    assert all(r.import_run_id == run.id for r in db_session.scalars(select(QuarantinedRecord)))


def test_a_10_mb_single_line(
    write_csv_file: CsvWriter, mapping: MappingConfig, db_session: Session, cipher: PiiCipher, tmp_path: Path
) -> None:
    # A data row of 10 MB between two good rows: quarantined, its neighbours imported.
    path = write_csv_file(
        [good_row("HS-1"), good_row("HS-2", procedure_name="y" * 10_000_000), good_row("HS-3")]
    )
    result = _import(db_session, path, mapping, cipher)
    assert (result.counts.inserted, result.counts.quarantined) == (2, 1)
    ((_, field, reason),) = _quarantine(db_session)
    assert field == "row" and "field larger than field limit" in reason
    # A file that is one 10 MB line with no newline at all: no header, a clear error.
    blob = tmp_path / "blob.csv"
    blob.write_bytes(b"z" * 10_000_000)
    with pytest.raises(SourceFileError, match="header row cannot be read"):
        list(CsvSource(blob, mapping=mapping).rows())


def test_invalid_utf8_deep_in_a_file_quarantines_that_row_only(
    write_csv_file: CsvWriter, mapping: MappingConfig, db_session: Session, cipher: PiiCipher
) -> None:
    filler = [good_row(f"HS-{i}") for i in range(1, 1500)]  # push the bad bytes past the sniffed head
    path = write_csv_file([*filler, good_row("HS-BAD", submitter_name="Tr@n")])
    data = path.read_bytes().replace(b"Tr@n", "Tr\xe2\xa7n".encode("latin-1"))
    path.write_bytes(data)
    result = _import(db_session, path, mapping, cipher, batch_size=500)
    assert (result.counts.inserted, result.counts.quarantined) == (1499, 1)
    ((ref, field, reason),) = _quarantine(db_session)
    assert (ref, field) == ("row 1501", "submitter_name") and "not valid UTF-8" in reason


def test_reimport_changes_nothing_and_a_later_file_updates(
    write_csv_file: CsvWriter, mapping: MappingConfig, db_session: Session, cipher: PiiCipher
) -> None:
    pending = dict(returned_at="", status="Đang xử lý", due_at="20/01/2026")
    path = write_csv_file([good_row("HS-1"), good_row("HS-2", **pending)], name="v1.csv")
    first = _import(db_session, path, mapping, cipher)
    assert first.counts.inserted == 2
    second = _import(db_session, path, mapping, cipher)
    assert (second.counts.inserted, second.counts.updated, second.counts.unchanged) == (0, 0, 2)
    returned = dict(pending, returned_at="14/01/2026 10:00", status="Đã trả kết quả")
    later = write_csv_file([good_row("HS-1"), good_row("HS-2", **returned)], name="v2.csv")
    third = _import(db_session, later, mapping, cipher)
    assert (third.counts.updated, third.counts.unchanged) == (1, 1)
    statuses = (
        db_session.execute(
            select(DossierStatusHistory.status)
            .join(Dossier)
            .where(Dossier.code == "HS-2")
            .order_by(DossierStatusHistory.id)
        )
        .scalars()
        .all()
    )
    assert statuses == ["received", "returned"]
    assert db_session.scalar(select(func.count()).select_from(ImportRun)) == 3


def test_a_nul_character_quarantines_its_row_and_the_rest_is_imported(
    write_csv_file: CsvWriter, mapping: MappingConfig, db_session: Session, cipher: PiiCipher
) -> None:
    # csv passes "\x00" through; PostgreSQL text can hold no NUL (COPY and parameters refuse it).
    path = write_csv_file(
        [
            good_row("HS-1"),
            good_row("HS-\x002"),
            good_row("HS-3", procedure_name="Đăng ký\x00 khai sinh"),
            good_row("HS-4", agency_name="Sở Tư\x00 pháp", agency_code=""),
            good_row("HS-5"),
        ]
    )
    result = _import(db_session, path, mapping, cipher)
    assert (result.counts.inserted, result.counts.quarantined) == (2, 3)
    quarantined = _quarantine(db_session)
    assert [(ref, field) for ref, field, _ in quarantined] == [
        ("row 3", "code"),
        ("row 4", "procedure_name"),
        ("row 5", "agency_name"),
    ]
    assert all("contains a NUL character" in reason for _, _, reason in quarantined)
    assert sorted(db_session.scalars(select(Dossier.code))) == ["HS-1", "HS-5"]
    # A re-import probes for unchanged rows (the NUL code among them) without choking.
    again = _import(db_session, path, mapping, cipher)
    assert (again.counts.inserted, again.counts.unchanged, again.counts.quarantined) == (0, 2, 3)
