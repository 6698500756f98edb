"""The import pipeline: unchanged rows skipped before any work, timeliness moving, worker processes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from intake_helpers import FIELD_ORDER, HEADER, NOW, CsvWriter, good_row
from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.core.pii import PiiCipher
from callcenter.core.settings import Settings
from callcenter.intake import importer
from callcenter.intake.adapters.base import SourceRow
from callcenter.intake.adapters.files import CsvSource
from callcenter.intake.importer import ImportResult, run_import
from callcenter.intake.mapping import TARGET_FIELDS, MappingConfig
from callcenter.intake.models import Agency, Dossier, DossierStatusHistory, Field, QuarantinedRecord
from callcenter.intake.synthetic import make_raw_dossiers, write_csv


def _run(session: Session, path: Path, mapping: MappingConfig, cipher: PiiCipher, **kw: Any) -> ImportResult:
    options: dict[str, Any] = {"source": "file:test", "mapping": mapping, "cipher": cipher, "now": NOW}
    options.update(kw)
    return run_import(session, connector=CsvSource(path, mapping=mapping), **options)


@pytest.fixture
def pools(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ``max_workers`` of every process pool the importer starts (to show the workers ran)."""
    sizes: list[int] = []

    class CountingPool(importer.ProcessPoolExecutor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            sizes.append(kwargs["max_workers"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(importer, "ProcessPoolExecutor", CountingPool)
    return sizes


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The codes of the rows the importer parses (in this process), in order."""
    codes: list[str] = []
    original = importer.normalise_record

    def spy(values: Any, **kw: Any) -> Any:
        codes.append(values["code"])
        return original(values, **kw)

    monkeypatch.setattr(importer, "normalise_record", spy)
    return codes


def test_reimport_skips_unchanged_rows_before_parsing_them(
    db_session: Session,
    cipher: PiiCipher,
    mapping: MappingConfig,
    tmp_path: Path,
    parsed: list[str],
) -> None:
    path = tmp_path / "export.csv"
    write_csv(path, make_raw_dossiers(400, seed=3, now=NOW, bad_share=0.05), mapping=mapping)
    first = _run(db_session, path, mapping, cipher, batch_size=128)
    parsed.clear()
    second = _run(db_session, path, mapping, cipher, batch_size=128)
    assert (second.counts.inserted, second.counts.updated) == (0, 0)
    assert second.counts.unchanged == first.counts.inserted
    assert second.counts.quarantined == first.counts.quarantined
    # Only the quarantined rows (never stored) were parsed again.
    assert len(parsed) == first.counts.quarantined


def test_a_pending_dossier_turning_overdue_is_an_update_with_history(
    db_session: Session, cipher: PiiCipher, mapping: MappingConfig, write_csv_file: CsvWriter
) -> None:
    row = good_row("HS-7", returned_at="", status="Đang xử lý", due_at="16/01/2026")
    path = write_csv_file([row, good_row("HS-8")])
    first = _run(db_session, path, mapping, cipher)
    assert first.counts.inserted == 2
    later = NOW + timedelta(days=3)  # the same file, after the appointment date passed
    again = _run(db_session, path, mapping, cipher, now=later)
    assert (again.counts.updated, again.counts.unchanged) == (1, 1)
    history = db_session.scalars(
        select(DossierStatusHistory.timeliness)
        .join(Dossier)
        .where(Dossier.code == "HS-7")
        .order_by(DossierStatusHistory.id)
    ).all()
    assert history == ["pending", "overdue"]


def test_a_cancelled_dossier_past_due_is_not_overdue_and_stays_unchanged(
    db_session: Session,
    cipher: PiiCipher,
    mapping: MappingConfig,
    write_csv_file: CsvWriter,
    parsed: list[str],
) -> None:
    # HS-9 was withdrawn before its due date; HS-10 is still in process. Both are past due later.
    cancelled = good_row("HS-9", returned_at="", status="Rút hồ sơ", due_at="16/01/2026")
    pending = good_row("HS-10", returned_at="", status="Đang xử lý", due_at="16/01/2026")
    path = write_csv_file([cancelled, pending])
    assert _run(db_session, path, mapping, cipher).counts.inserted == 2
    parsed.clear()
    again = _run(db_session, path, mapping, cipher, now=NOW + timedelta(days=3))
    # The probe for unchanged rows (SQL on PostgreSQL) agrees with derive_timeliness: the cancelled
    # dossier has not moved and is not even parsed again; the one in process has turned overdue.
    assert (again.counts.updated, again.counts.unchanged) == (1, 1)
    assert parsed == ["HS-10"]
    stored = {code: t for code, t in db_session.execute(select(Dossier.code, Dossier.timeliness))}
    assert stored == {"HS-9": "cancelled", "HS-10": "overdue"}


class ListConnector:
    """An in-memory connector (what an API page would yield)."""

    kind = "api"
    location = "memory://"

    def __init__(self, rows: list[list[str]]) -> None:
        self._rows = rows

    def rows(self) -> Iterator[SourceRow]:
        for i, cells in enumerate(self._rows):
            values = dict(zip(FIELD_ORDER, cells, strict=True))
            yield SourceRow(f"item {i}", tuple(values.get(t) for t in TARGET_FIELDS), values)

    def raw_record(self, raw: Any) -> Any:
        return raw


def test_last_wins_keeps_the_later_copy_of_a_record(
    db_session: Session, cipher: PiiCipher, mapping: MappingConfig
) -> None:
    rows = [
        good_row("HS-1", returned_at="", status="Đang xử lý", due_at="20/01/2026"),
        good_row("HS-2"),
        good_row("HS-1", returned_at="14/01/2026 10:00"),
    ]
    result = run_import(
        db_session,
        connector=ListConnector(rows),
        source="onestop",
        mapping=mapping,
        cipher=cipher,
        now=NOW,
        on_duplicate="last_wins",
    )
    assert (result.counts.inserted, result.counts.unchanged, result.counts.quarantined) == (2, 1, 0)
    assert db_session.scalars(select(Dossier.status).where(Dossier.code == "HS-1")).one() == "returned"


def test_worker_processes_give_the_same_result(
    pg_session: Session,
    sqlite_session: Session,
    cipher: PiiCipher,
    mapping: MappingConfig,
    tmp_path: Path,
    pools: list[int],
) -> None:
    path = tmp_path / "export.csv"
    raws = list(make_raw_dossiers(600, seed=8, now=NOW, bad_share=0.03))
    raws.append(dict(raws[10]))  # a duplicate code
    write_csv(path, raws, mapping=mapping, delimiter=";")
    settings = Settings(env="test")
    keys = (settings.pii_key_bytes, settings.phone_hash_key.get_secret_value().encode())
    outcomes = []
    for session, workers, source in ((pg_session, 2, "w2"), (pg_session, 0, "w0"), (sqlite_session, 1, "w1")):
        result = _run(
            session, path, mapping, cipher, source=source, workers=workers, worker_keys=keys, batch_size=97
        )
        stored = session.execute(
            select(Dossier.code, Dossier.status, Dossier.timeliness, Dossier.content_hash, Dossier.phone_hash)
            .where(Dossier.source == source)
            .order_by(Dossier.code)
        ).all()
        quarantined = session.execute(
            select(QuarantinedRecord.row_ref, QuarantinedRecord.reason)
            .where(QuarantinedRecord.source == source)
            .order_by(QuarantinedRecord.id)
        ).all()
        outcomes.append((result.counts, [tuple(r) for r in stored], [tuple(q) for q in quarantined]))
    assert pools == [2, 1]  # the worker runs really used worker processes
    assert outcomes[0] == outcomes[1] == outcomes[2]
    counts, stored_rows, quarantined_rows = outcomes[0]
    assert counts.inserted == len(stored_rows) and counts.quarantined == len(quarantined_rows) >= 2
    assert any("duplicate dossier code" in reason for _, reason in quarantined_rows)


def test_workers_need_key_material(
    db_session: Session, cipher: PiiCipher, mapping: MappingConfig, tmp_path: Path
) -> None:
    path = tmp_path / "export.csv"
    write_csv(path, make_raw_dossiers(3, seed=8, now=NOW), mapping=mapping)
    with pytest.raises(ValueError, match="worker_keys"):
        _run(db_session, path, mapping, cipher, workers=1)


def test_a_refused_record_still_moves_the_sync_watermark(
    db_session: Session, cipher: PiiCipher, mapping: MappingConfig
) -> None:
    rows = [
        good_row("HS-1", updated_at="2026-01-10T08:00:00+07:00"),
        good_row("HS-2", phone="garbage", updated_at="2026-01-12T08:00:00+07:00"),
    ]
    result = run_import(
        db_session, connector=ListConnector(rows), source="onestop", mapping=mapping, cipher=cipher, now=NOW
    )
    assert (result.counts.inserted, result.counts.quarantined) == (1, 1)
    assert result.latest_update == datetime(2026, 1, 12, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_refused_record_with_an_out_of_range_updated_at_does_not_move_the_watermark(
    db_session: Session,
    cipher: PiiCipher,
    mapping: MappingConfig,
    workers: int,
    pools: list[int],
) -> None:
    rows = [
        good_row("HS-1", updated_at="2026-01-10T08:00:00+07:00"),
        good_row("HS-2", updated_at="2206-01-08T15:05"),  # refused: year outside 1990-2100
        good_row("HS-3", phone="garbage", updated_at="2206-01-08T15:05"),
        good_row("HS-4", phone="garbage", updated_at="not a date"),
    ]
    settings = Settings(env="test")
    keys = (settings.pii_key_bytes, settings.phone_hash_key.get_secret_value().encode())
    result = run_import(
        db_session,
        connector=ListConnector(rows),
        source="onestop",
        mapping=mapping,
        cipher=cipher,
        now=NOW,
        workers=workers,  # the worker processes' preparer applies the same rule
        worker_keys=keys,
    )
    assert pools == ([workers] if workers else [])  # the worker run really prepared in a worker
    assert (result.counts.inserted, result.counts.quarantined) == (1, 3)
    assert result.latest_update == datetime(2026, 1, 10, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_name_without_a_code_lands_on_the_stored_agency_of_that_name(
    db_session: Session,
    cipher: PiiCipher,
    mapping: MappingConfig,
    write_csv_file: CsvWriter,
    settings: Settings,
    workers: int,
) -> None:
    """An export naming an agency with no "Mã cơ quan" must not create a second "Sở Y tế"."""
    first = write_csv_file(
        [
            good_row("HS-1", agency_name="Sở Y tế", agency_code="DN-SYT", field_name="Khám bệnh, chữa bệnh"),
            good_row("HS-2", agency_name="Sở Tư pháp", agency_code="DN-STP"),
            # Two stored agencies share this name: a name alone cannot say which one it means.
            good_row("HS-3", agency_name="UBND phường Hải Châu", agency_code="P-HC-1"),
            good_row("HS-4", agency_name="UBND phường Hải Châu", agency_code="P-HC-2"),
        ],
        name="api-like.csv",
    )
    assert _run(db_session, first, mapping, cipher, source="api").counts.inserted == 4
    agencies_before = db_session.execute(select(Agency.code)).scalars().all()

    # The same agencies typed by hand: other case, another tone-mark placement, no code column.
    header = [h for h in HEADER if h != "Mã cơ quan"]
    rows = [
        good_row("F-1", agency_name="Sở Y Tế", field_name="Khám bệnh, Chữa bệnh"),
        good_row("F-2", agency_name="sở tư  pháp"),
        good_row("F-3", agency_name="UBND phường Hải Châu"),
        good_row("F-4", agency_name="Sở Xây dựng"),  # not stored yet: a code from its name
    ]
    no_code = [[cell for cell, h in zip(row, HEADER, strict=True) if h != "Mã cơ quan"] for row in rows]
    path = write_csv_file(no_code, name="typed.csv", header=header)
    keys = (settings.pii_key_bytes, settings.phone_hash_key.get_secret_value().encode())
    result = _run(db_session, path, mapping, cipher, source="file:typed", workers=workers, worker_keys=keys)
    assert result.counts.inserted == 4
    stored = dict(
        db_session.execute(
            select(Dossier.code, Agency.code).join(Agency, Agency.id == Dossier.agency_id)
            .where(Dossier.source == "file:typed")
        ).all()
    )  # fmt: skip
    assert stored == {"F-1": "DN-SYT", "F-2": "DN-STP", "F-3": "UBND_PHUONG_HAI_CHAU", "F-4": "SO_XAY_DUNG"}
    new_agencies = set(db_session.execute(select(Agency.code)).scalars()) - set(agencies_before)
    assert new_agencies == {"UBND_PHUONG_HAI_CHAU", "SO_XAY_DUNG"}
    fields = db_session.execute(select(Field.code, Field.name)).all()
    assert [code for code, name in fields if name.casefold().startswith("khám")] == ["KHAM_BENH_CHUA_BENH"]
