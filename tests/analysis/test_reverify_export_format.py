"""The phúc tra CSV is for people with a spreadsheet; the JSON export stays machine-friendly."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from callcenter.analysis import reverify
from callcenter.analysis.periods import Period
from callcenter.analysis.reverify import RecheckRecord
from callcenter.core.pii import PiiCipher

from .conftest import Builder

MARCH = Period.parse("2026-03")
NOW = datetime(2026, 4, 1, tzinfo=UTC)  # 07:00 on 01/04 in Da Nang: March has ended


def _record(phone: str, channel: str = "call", rank: int = 1) -> RecheckRecord:
    return RecheckRecord(
        rank=rank,
        response_id=100 + rank,
        dossier_code=f"HS-{rank:06d}",
        agency="Sở Tư pháp",
        field="Hộ tịch",
        channel=channel,
        answered_at_local="10/03/2026 09:00",
        satisfied=False,
        reasons="2;4",
        submitter_name="Nguyễn Văn An",
        phone=phone,
    )


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _spreadsheet_reads_as_number(cell: str) -> bool:
    """What Excel and LibreOffice do with a bare cell of digits, '+' and grouping commas or dots."""
    try:
        float(cell.replace(",", "").replace(".", ""))
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(
    ("e164", "dialled"),
    [
        ("+84905123456", "0905 123 456"),  # mobile
        ("+842363822123", "0236 3822 123"),  # Da Nang landline
        ("+842438221234", "024 3822 1234"),  # Hà Nội landline
    ],
)
def test_the_csv_phone_is_the_national_number_a_verifier_dials_and_stays_text(
    e164: str, dialled: str
) -> None:
    text = reverify.records_csv([_record(e164)])
    (row,) = _rows(text)
    assert row["Số điện thoại"] == dialled
    assert not _spreadsheet_reads_as_number(row["Số điện thoại"])  # the leading 0 survives
    assert "+84" not in text


def test_the_csv_channel_is_its_vietnamese_name() -> None:
    rows = _rows(
        reverify.records_csv(
            [
                _record("+84905123456", "call", 1),
                _record("+84905123457", "web", 2),
                _record("+84905123458", "paper", 3),
            ]
        )
    )
    assert [r["Kênh"] for r in rows] == ["Gọi điện tự động (1022)", "Khảo sát trực tuyến", "Phiếu giấy"]


def test_exported_sample_csv_for_people_json_for_machines(
    db_session: Session, build: Builder, cipher: PiiCipher
) -> None:
    a, f = build.agency("TP", "Sở Tư pháp"), build.field("HT", "Hộ tịch")
    answered = datetime(2026, 3, 10, 2, tzinfo=UTC)
    mobile = build.dossier(a, f, returned_at=answered, phone="+84905123456")
    landline = build.dossier(a, f, returned_at=answered, phone="+842363822123")
    build.called_response(mobile, a, f, at=answered, satisfied=True)
    build.response(agency=a, fld=f, answered_at=answered, satisfied=False, channel="web", dossier=landline)
    sample = reverify.draw_sample(db_session, agency_id=a.id, period=MARCH, actor="x", now=NOW)
    records = reverify.export_sample(
        db_session, sample_id=sample.id, cipher=cipher, actor="cli:kiem-tra", role="verifier", now=NOW
    )

    by_phone = {r["Số điện thoại"]: r for r in _rows(reverify.records_csv(records))}
    assert set(by_phone) == {"0905 123 456", "0236 3822 123"}
    assert by_phone["0905 123 456"]["Kênh"] == "Gọi điện tự động (1022)"
    assert by_phone["0236 3822 123"]["Kênh"] == "Khảo sát trực tuyến"
    # The JSON export (the API's ?format=json) keeps E.164 and the channel code.
    as_json = {r["phone"]: r for r in json.loads(json.dumps([asdict(r) for r in records]))}
    assert set(as_json) == {"+84905123456", "+842363822123"}
    assert as_json["+842363822123"]["channel"] == "web"
