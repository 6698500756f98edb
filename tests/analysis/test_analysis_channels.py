"""Importing web, paper and independent survey results: mapping, all-or-nothing, channel summaries."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callcenter.analysis import alerts, channel_import, service
from callcenter.analysis.models import Alert, DeliveryMode, NotifierKind
from callcenter.analysis.periods import Period
from callcenter.analysis.settings import AnalysisSettings
from callcenter.core.pii import PiiCipher
from callcenter.ivr.models import SurveyResponse

from .conftest import Builder

NOW = datetime(2026, 4, 1, tzinfo=UTC)
HEADERS = [
    "Mã phiếu",
    "Mã cơ quan",
    "Mã lĩnh vực",
    "Mã hồ sơ",
    "Thời gian đánh giá",
    "Mức độ hài lòng",
    "Lý do chưa hài lòng",
    "Ý kiến khác",
    "Số điện thoại",
]
CODES = list(range(1, 10))
ALERTS = AnalysisSettings(digest_hour_local=7)


def _csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADERS)
        writer.writerows(rows)
    return path


def _count(session: Session, channel: str) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(SurveyResponse).where(SurveyResponse.channel == channel)
        )
        or 0
    )


def _import(session: Session, rows: Any, channel: str, cipher: PiiCipher) -> channel_import.ImportSummary:
    return channel_import.import_results(
        session, rows=rows, channel=channel, cipher=cipher, now=NOW, reason_codes=CODES, alert_settings=ALERTS
    )


def test_web_csv_import_and_channel_summary(
    db_session: Session, build: Builder, cipher: PiiCipher, tmp_path: Path
) -> None:
    a = build.agency("XD", "Sở Xây dựng")
    f = build.field("DD", "Đất đai")
    d = build.dossier(a, f, returned_at=datetime(2026, 3, 1, tzinfo=UTC), timeliness="late")
    build.called_response(
        build.dossier(a, f, returned_at=datetime(2026, 3, 2, tzinfo=UTC)),
        a,
        f,
        at=datetime(2026, 3, 5, 3, tzinfo=UTC),
        satisfied=True,
    )
    path = _csv(
        tmp_path / "web.csv",
        [
            ["W-1", "XD", "DD", "", "05/03/2026 08:30", "Hài lòng", "", "", ""],
            [
                "W-2",
                "XD",
                "",
                d.code,
                "2026-03-06T10:00:00+07:00",
                "Chưa hài lòng",
                "2;4",
                "Gọi 0905123456",
                "0905123456",
            ],
            ["W-3", "XD", "DD", "", "31/03/2026 23:30", "Không hài lòng", "8", "", ""],
        ],
    )
    rows = channel_import.read_table(path)
    summary = _import(db_session, rows, "web", cipher)
    assert (summary.rows, summary.inserted, summary.already_imported) == (3, 3, 0)
    w2 = db_session.scalar(select(SurveyResponse).where(SurveyResponse.external_ref == "W-2"))
    assert w2 is not None
    assert w2.dossier_id == d.id and w2.field_id == f.id  # field taken from the linked dossier
    assert w2.dossier_timeliness == d.timeliness == "late"  # copied: the answer's stratum
    assert w2.phone_hash == cipher.phone_hash("+84905123456")
    assert cipher.decrypt(w2.comment_enc or b"") == "Gọi 0905123456"  # stored encrypted, not in clear
    assert sorted(r.reason_code for r in w2.reasons) == [2, 4]
    # 31/03 23:30 in Da Nang is still March.
    assert w2.answered_at == datetime(2026, 3, 6, 3, tzinfo=UTC)

    again = _import(db_session, rows, "web", cipher)
    assert (again.inserted, again.already_imported) == (0, 3)
    assert _count(db_session, "web") == 3

    march = service.summarise(db_session, period=Period.parse("2026-03"), group_by=("channel",))
    by_channel = {r.key.channel: r.figures for r in march.rows}
    assert (by_channel["web"].rated, by_channel["web"].satisfied) == (3, 1)
    assert (by_channel["call"].rated, by_channel["call"].satisfied) == (1, 1)
    assert (march.total.rated, march.total.satisfied) == (4, 2)  # the combined view
    assert {r.code: r.count for r in by_channel["web"].reasons} == {2: 1, 4: 1, 8: 1}
    # The web answer linked to a late dossier joins the late stratum.
    assert by_channel["web"].rated_late_overdue == 1


def test_xlsx_import_paper(db_session: Session, build: Builder, cipher: PiiCipher, tmp_path: Path) -> None:
    build.agency("TP", "Sở Tư pháp")
    book = Workbook()
    ws = book.active
    assert ws is not None
    ws.append(HEADERS)
    ws.append(["P-1", "TP", None, None, datetime(2026, 3, 3, 9, 0), "Hài lòng", None, None, None])
    ws.append(["P-2", "TP", None, None, "03/03/2026", "0", 6, "Phải bồi dưỡng", None])
    path = tmp_path / "paper.xlsx"
    book.save(path)
    summary = _import(db_session, channel_import.read_table(path), "paper", cipher)
    assert summary.inserted == 2
    p1 = db_session.scalar(select(SurveyResponse).where(SurveyResponse.external_ref == "P-1"))
    assert p1 is not None and p1.answered_at == datetime(2026, 3, 3, 2, 0, tzinfo=UTC)  # 09:00 local


def test_bad_rows_are_reported_by_row_and_field_and_nothing_is_imported(
    db_session: Session, build: Builder, cipher: PiiCipher, tmp_path: Path
) -> None:
    build.agency("XD")
    other = build.agency("TP")
    f = build.field("DD")
    foreign = build.dossier(other, f, returned_at=datetime(2026, 3, 1, tzinfo=UTC))
    path = _csv(
        tmp_path / "bad.csv",
        [
            ["I-1", "XD", "", "", "05/03/2026", "Hài lòng", "", "", ""],  # fine
            ["I-2", "NOPE", "", "", "05/03/2026", "Hài lòng", "", "", ""],
            ["I-3", "XD", "ZZ", "", "32/03/2026", "Hài lòng", "", "", ""],
            ["I-4", "XD", "", "", "05/03/2026", "Bình thường", "", "", ""],
            ["I-5", "XD", "", "", "05/03/2026", "Chưa hài lòng", "2;42", "", "12345"],
            ["I-1", "XD", "", foreign.code, "05/03/2026", "Hài lòng", "3", "", ""],
            ["I-7", "XD", "", "", "05/05/2026", "Hài lòng", "", "", ""],
        ],
    )
    with pytest.raises(channel_import.ResultsRejected) as caught:
        _import(db_session, channel_import.read_table(path), "independent", cipher)
    found = {(e.row, e.field) for e in caught.value.errors}
    assert found == {
        (3, "Mã cơ quan"),
        (4, "Mã lĩnh vực"),
        (4, "Thời gian đánh giá"),
        (5, "Mức độ hài lòng"),
        (6, "Lý do chưa hài lòng"),
        (6, "Số điện thoại"),
        (7, "Mã phiếu"),
        (7, "Mã hồ sơ"),
        (7, "Lý do chưa hài lòng"),
        (8, "Thời gian đánh giá"),
    }
    assert "row 3, field 'Mã cơ quan': unknown agency code 'NOPE'" in str(caught.value)
    assert _count(db_session, "independent") == 0

    # Typed by hand: a CCCD in the dossier-code column, a name and a phone in the date column. The
    # message names the row and the field; it never repeats a number or a name in full.
    typo = _csv(
        tmp_path / "typo.csv",
        [
            ["W-1", "XD", "", "048090001234", "05/03/2026", "Hài lòng", "", "", ""],
            ["W-2", "XD", "", "", "Nguyễn Thị Bình 0914123432", "Hài lòng", "", "", ""],
        ],
    )
    with pytest.raises(channel_import.ResultsRejected) as typed:
        _import(db_session, channel_import.read_table(typo), "web", cipher)
    assert [str(e) for e in typed.value.errors] == [
        "row 2, field 'Mã hồ sơ': dossier '*********234' is unknown",
        "row 3, field 'Thời gian đánh giá': is not a date (use dd/mm/yyyy HH:MM)",
    ]

    # Dates no report can show (a typo of 0099 for 2026, a spreadsheet's 1900) are refused.
    old = _csv(
        tmp_path / "old.csv",
        [
            ["O-1", "XD", "", "", "01/10/0099", "Hài lòng", "", "", ""],
            ["O-2", "XD", "", "", "01/01/1900 08:00", "Hài lòng", "", "", ""],
        ],
    )
    with pytest.raises(channel_import.ResultsRejected) as dated:
        _import(db_session, channel_import.read_table(old), "web", cipher)
    assert [str(e) for e in dated.value.errors] == [
        "row 2, field 'Thời gian đánh giá': year 99 is before 2000",
        "row 3, field 'Thời gian đánh giá': year 1900 is before 2000",
    ]
    # A header alone (or the wrong header with no rows) imports nothing: refused, not a success.
    for name, text in (("header.csv", ",".join(HEADERS) + "\n"), ("wrong.csv", "a,b,c\n")):
        (tmp_path / name).write_text(text, encoding="utf-8")
        with pytest.raises(channel_import.ResultsRejected, match="row 2: the file has no answer rows"):
            _import(db_session, channel_import.read_table(tmp_path / name), "web", cipher)
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    with pytest.raises(channel_import.ValidationError, match=r"empty\.csv: the file is empty"):
        channel_import.read_table(tmp_path / "empty.csv")
    assert _count(db_session, "web") == 0


def test_a_semicolon_csv_from_excel_is_read(
    db_session: Session, build: Builder, cipher: PiiCipher, tmp_path: Path
) -> None:
    """Excel in a Vietnamese locale saves "CSV" with ";" (and a BOM): the same columns, found."""
    build.agency("XD")
    path = tmp_path / "phieu-giay.csv"
    lines = [";".join(HEADERS), "S-1;XD;;;05/03/2026 09:00;Chưa hài lòng;2,4;Chờ lâu, gọi nhiều lần;"]
    path.write_text("\ufeff" + "\r\n".join(lines) + "\r\n", encoding="utf-8")
    summary = _import(db_session, channel_import.read_table(path), "paper", cipher)
    assert summary.inserted == 1
    row = db_session.scalar(select(SurveyResponse).where(SurveyResponse.external_ref == "S-1"))
    assert row is not None and row.satisfied is False and sorted(r.reason_code for r in row.reasons) == [2, 4]

    with pytest.raises(channel_import.ValidationError, match="channel"):
        _import(db_session, [], "call", cipher)
    missing = tmp_path / "missing.csv"
    missing.write_text("Mã phiếu,Mã cơ quan\nX-1,XD\n", encoding="utf-8")
    with pytest.raises(channel_import.ResultsRejected, match="Thời gian đánh giá"):
        _import(db_session, channel_import.read_table(missing), "web", cipher)


def test_mapping_file_is_validated(tmp_path: Path) -> None:
    assert channel_import.load_mapping().columns.satisfaction == "Mức độ hài lòng"
    bad = tmp_path / "m.yaml"
    bad.write_text(
        "columns:\n  external_ref: Ma\nvalues:\n  satisfied: [a]\n  unsatisfied: [b]\n", encoding="utf-8"
    )
    with pytest.raises(channel_import.ValidationError, match=r"mapping\.columns"):
        channel_import.load_mapping(bad)


def test_imported_unsatisfied_answers_are_alerted_however_old(
    db_session: Session, build: Builder, cipher: PiiCipher, tmp_path: Path
) -> None:
    a, b = build.agency("XD", "Sở Xây dựng"), build.agency("TP", "Sở Tư pháp")
    subscriptions: dict[int, DeliveryMode] = {}
    for mode in (DeliveryMode.IMMEDIATE, DeliveryMode.DIGEST):
        row, _secret = alerts.add_subscription(
            db_session,
            agency_id=a.id,
            notifier=NotifierKind.EMAIL,
            target=f"{mode.value}@xaydung.danang.gov.vn",
            mode=mode,
            cipher=cipher,
            now=NOW,
        )
        subscriptions[row.id] = mode
    # Paper forms entered a month after they were filled in: far outside the alert sweep's 48 hours.
    path = _csv(
        tmp_path / "paper.csv",
        [
            ["P-1", "XD", "", "", "02/03/2026 08:30", "Chưa hài lòng", "2", "", ""],
            ["P-2", "XD", "", "", "03/03/2026 09:00", "Hài lòng", "", "", ""],
            ["P-3", "XD", "", "", "04/03/2026 10:00", "Không hài lòng", "", "Chờ lâu", ""],
            ["P-4", "TP", "", "", "05/03/2026 10:00", "Chưa hài lòng", "", "", ""],  # no subscription
        ],
    )
    rows = channel_import.read_table(path)
    summary = _import(db_session, rows, "paper", cipher)
    assert (summary.inserted, summary.alerts) == (4, 4)
    raised = db_session.execute(
        select(SurveyResponse.external_ref, Alert.subscription_id, Alert.state, Alert.next_attempt_at)
        .join(Alert, Alert.response_id == SurveyResponse.id)
        .order_by(SurveyResponse.external_ref, Alert.subscription_id)
    ).all()
    digest_at = alerts.next_digest_at(NOW, ALERTS.digest_hour_local)
    assert [(ref, subscriptions[sid], state) for ref, sid, state, _due in raised] == [
        ("P-1", DeliveryMode.IMMEDIATE, "pending"),
        ("P-1", DeliveryMode.DIGEST, "pending"),
        ("P-3", DeliveryMode.IMMEDIATE, "pending"),
        ("P-3", DeliveryMode.DIGEST, "pending"),
    ]
    # As raise_alerts does for any answer: immediate ones are due now, the others wait for the digest.
    assert [
        due == (NOW if subscriptions[sid] == DeliveryMode.IMMEDIATE else digest_at)
        for _r, sid, _s, due in raised
    ] == [True] * 4

    again = _import(db_session, rows, "paper", cipher)
    assert (again.inserted, again.alerts) == (0, 0)
    assert db_session.scalar(select(func.count()).select_from(Alert)) == 4
    assert b.id not in set(db_session.scalars(select(Alert.agency_id)))
