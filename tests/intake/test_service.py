"""Upsert, history, reference data and quarantine on real PostgreSQL and SQLite (``db_session``)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from intake_helpers import NOW
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from callcenter.core.pii import PiiCipher
from callcenter.intake import service
from callcenter.intake.models import Agency, Dossier, DossierStatusHistory, Field, QuarantinedRecord
from callcenter.intake.normalise import DossierRecord, FieldError
from callcenter.intake.service import (
    Rejection,
    UpsertMethod,
    get_or_create_agency,
    get_or_create_field,
    get_watermark,
    quarantine_records,
    set_watermark,
    upsert_dossiers,
)
from callcenter.intake.synthetic import make_dossiers


def _count(session: Session, model: type) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_insert_then_reimport_is_a_no_op(db_session: Session, cipher: PiiCipher) -> None:
    records = make_dossiers(40, seed=7, now=NOW)
    first = upsert_dossiers(db_session, records=records, source="onestop", cipher=cipher, now=NOW)
    assert (first.inserted, first.updated, first.unchanged) == (40, 0, 0)
    before = {
        d.code: (d.content_hash, d.updated_at, d.phone_enc) for d in db_session.scalars(select(Dossier)).all()
    }
    history_before = _count(db_session, DossierStatusHistory)
    assert history_before == 40  # the first state of every dossier

    again = upsert_dossiers(
        db_session, records=records, source="onestop", cipher=cipher, now=NOW + timedelta(hours=1)
    )
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 40)
    db_session.expire_all()
    after = {
        d.code: (d.content_hash, d.updated_at, d.phone_enc) for d in db_session.scalars(select(Dossier)).all()
    }
    assert after == before  # not even re-encrypted: no write happened
    assert _count(db_session, DossierStatusHistory) == history_before


def test_personal_data_is_encrypted_and_hashed(db_session: Session, cipher: PiiCipher) -> None:
    record = make_dossiers(1, seed=3, now=NOW)[0]
    upsert_dossiers(db_session, records=[record], source="onestop", cipher=cipher, now=NOW)
    stored = db_session.scalars(select(Dossier)).one()
    assert record.submitter_name.encode() not in stored.submitter_name_enc
    assert cipher.decrypt(stored.submitter_name_enc) == record.submitter_name
    assert cipher.decrypt(stored.phone_enc) == record.phone_e164
    assert stored.phone_hash == cipher.phone_hash(record.phone_e164)
    assert cipher.decrypt_optional(stored.national_id_enc) == record.national_id
    assert stored.received_at == record.received_at  # aware, same instant


def test_later_record_updates_and_appends_history(db_session: Session, cipher: PiiCipher) -> None:
    pending = next(r for r in make_dossiers(200, seed=11, now=NOW) if r.returned_at is None)
    upsert_dossiers(db_session, records=[pending], source="onestop", cipher=cipher, now=NOW)
    returned_at = NOW - timedelta(hours=1)
    later = dataclasses.replace(
        pending,
        returned_at=returned_at,
        status=pending.status.RETURNED,
        timeliness=pending.timeliness.ON_TIME,
        source_updated_at=NOW,
    )
    counts = upsert_dossiers(
        db_session, records=[later], source="onestop", cipher=cipher, now=NOW + timedelta(minutes=5)
    )
    assert (counts.inserted, counts.updated, counts.unchanged) == (0, 1, 0)
    stored = db_session.scalars(select(Dossier)).one()
    db_session.refresh(stored)
    assert (stored.status, stored.returned_at) == ("returned", returned_at)
    history = db_session.scalars(select(DossierStatusHistory).order_by(DossierStatusHistory.id)).all()
    assert [(h.status, h.returned_at) for h in history] == [
        (pending.status.value, None),
        ("returned", returned_at),
    ]


def test_a_stale_record_never_undoes_a_newer_one(db_session: Session, cipher: PiiCipher) -> None:
    record = make_dossiers(1, seed=5, now=NOW)[0]
    newer = dataclasses.replace(record, procedure_name="Thủ tục mới", source_updated_at=NOW)
    older = dataclasses.replace(
        record, procedure_name="Thủ tục cũ", source_updated_at=NOW - timedelta(days=3)
    )
    upsert_dossiers(db_session, records=[newer], source="onestop", cipher=cipher, now=NOW)
    counts = upsert_dossiers(db_session, records=[older], source="onestop", cipher=cipher, now=NOW)
    assert (counts.updated, counts.unchanged) == (0, 1)
    assert db_session.scalars(select(Dossier.procedure_name)).one() == "Thủ tục mới"


def test_the_same_code_from_another_source_is_another_dossier(db_session: Session, cipher: PiiCipher) -> None:
    records = make_dossiers(3, seed=5, now=NOW)
    upsert_dossiers(db_session, records=records, source="onestop", cipher=cipher, now=NOW)
    counts = upsert_dossiers(db_session, records=records, source="file:agency", cipher=cipher, now=NOW)
    assert counts.inserted == 3
    assert _count(db_session, Dossier) == 6


def test_a_batch_with_a_repeated_code_is_refused(db_session: Session, cipher: PiiCipher) -> None:
    record = make_dossiers(1, seed=5, now=NOW)[0]
    with pytest.raises(ValueError, match="same dossier code twice"):
        upsert_dossiers(db_session, records=[record, record], source="onestop", cipher=cipher, now=NOW)


def test_bulk_and_plain_paths_agree_on_postgresql(pg_session: Session, cipher: PiiCipher) -> None:
    """The same sequence of imports through both paths leaves the same rows and history."""
    records = make_dossiers(30, seed=21, now=NOW)
    changed = [
        dataclasses.replace(r, procedure_name=(r.procedure_name or "") + " (bổ sung)", source_updated_at=NOW)
        for r in records[:10]
    ]
    results = {}
    paths: tuple[tuple[UpsertMethod, str], ...] = (("bulk", "a"), ("plain", "b"))
    for method, source in paths:
        counts = [
            upsert_dossiers(pg_session, records=batch, source=source, cipher=cipher, now=NOW, method=method)
            for batch in (records, records, changed)
        ]
        rows = pg_session.execute(
            select(
                Dossier.code, Dossier.status, Dossier.timeliness, Dossier.procedure_name, Dossier.content_hash
            )
            .where(Dossier.source == source)
            .order_by(Dossier.code)
        ).all()
        history = pg_session.scalar(
            select(func.count())
            .select_from(DossierStatusHistory)
            .join(Dossier)
            .where(Dossier.source == source)
        )
        results[method] = ([dataclasses.astuple(c) for c in counts], [tuple(r) for r in rows], history)
    assert results["bulk"] == results["plain"]
    assert results["bulk"][0] == [(30, 0, 0, 0), (0, 0, 30, 0), (0, 10, 0, 0)]


def test_reference_data_get_or_create(db_session: Session) -> None:
    agency = get_or_create_agency(db_session, code="DN-STP", name="Sở Tư pháp")
    again = get_or_create_agency(db_session, code="DN-STP", name="Sở Tư pháp thành phố Đà Nẵng")
    assert agency.id == again.id and again.name == "Sở Tư pháp"
    field = get_or_create_field(db_session, code="HOTICH", name="Hộ tịch")
    assert get_or_create_field(db_session, code="HOTICH", name="x").id == field.id
    assert (_count(db_session, Agency), _count(db_session, Field)) == (1, 1)


def test_quarantine_keeps_reason_and_encrypted_raw(db_session: Session, cipher: PiiCipher) -> None:
    raw = {"Mã hồ sơ": "HS-9", "Số điện thoại": "0905 12", "Họ và tên người nộp": "Trần Văn Bình"}
    rejection = Rejection(
        "row 7", [FieldError("phone", "not a valid Vietnamese phone number"), FieldError("x", "y")], raw
    )
    huge = Rejection("row 8", [FieldError("row", "unreadable")], "z" * 200_000)
    stored = quarantine_records(
        db_session, rejections=[rejection, huge], source="onestop", import_run_id=None, cipher=cipher, now=NOW
    )
    assert stored == 2
    rows = db_session.scalars(select(QuarantinedRecord).order_by(QuarantinedRecord.id)).all()
    assert (rows[0].row_ref, rows[0].field) == ("row 7", "phone,x")
    assert rows[0].reason == "phone: not a valid Vietnamese phone number; x: y"
    assert rows[0].raw_enc is not None and b"0905" not in rows[0].raw_enc
    assert json.loads(cipher.decrypt(rows[0].raw_enc)) == raw
    assert rows[1].raw_enc is not None and "truncated" in cipher.decrypt(rows[1].raw_enc)


def test_watermark_only_moves_forward(db_session: Session) -> None:
    assert get_watermark(db_session, source="onestop") is None
    set_watermark(db_session, source="onestop", watermark=NOW, now=NOW)
    set_watermark(db_session, source="onestop", watermark=NOW - timedelta(days=1), now=NOW)
    assert get_watermark(db_session, source="onestop") == NOW
    later: datetime = NOW + timedelta(hours=2)
    set_watermark(db_session, source="onestop", watermark=later, now=later)
    assert get_watermark(db_session, source="onestop") == later


def test_contract_make_dossiers_gives_records(db_session: Session) -> None:
    records = make_dossiers(5, seed=1)
    assert all(isinstance(r, DossierRecord) for r in records)
    assert make_dossiers(5, seed=1) == records  # deterministic


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


def test_the_unchanged_probe_reads_one_index_entry_per_code_without_statistics(pg_session: Session) -> None:
    """A just-imported table has no statistics (autovacuum has not run yet): the planner then
    estimated a handful of rows per source and hashed the whole table for each batch of codes
    (0.9 s a batch at 1,000,000 dossiers). The probe must stay one index probe per code."""
    agency, field = Agency(code="PLAN", name="Sở Kế hoạch"), Field(code="PLAN", name="Kế hoạch")
    pg_session.add_all([agency, field])
    pg_session.flush()
    conn = pg_session.connection()
    columns = (
        "source, code, agency_id, field_id, submitter_name_enc, phone_enc, phone_hash, phone_kind, "
        "is_organisation, received_at, status, timeliness, content_hash, created_at, updated_at"
    )
    values = (
        "'plan', 'C' || g, :agency, :field, '\\x00', '\\x00', md5(g::text), 'mobile', "
        "false, now(), 'returned', 'on_time', md5(g::text), now(), now()"
    )
    conn.execute(
        text(f"INSERT INTO dossiers ({columns}) SELECT {values} FROM generate_series(1, 50000) g"),
        {"agency": agency.id, "field": field.id},
    )
    codes = [f"C{i}" for i in range(1, 2001, 2)]
    params = {
        "source": "plan",
        "now": NOW,
        "codes": service._PROBE_SEPARATOR.join(codes),
        "hashes": service._PROBE_SEPARATOR.join("x" for _ in codes),
    }
    plan = conn.execute(text("EXPLAIN (ANALYZE, FORMAT JSON) " + service._PG_UNCHANGED), params).scalar_one()
    nodes = list(_plan_nodes(plan[0]["Plan"]))
    on_dossiers = [n for n in nodes if n.get("Relation Name") == "dossiers"]
    assert [n["Node Type"] for n in on_dossiers] == ["Index Scan"], nodes
    assert on_dossiers[0]["Actual Loops"] == len(codes)  # one probe per code
    assert not any(n["Node Type"] in ("Hash Join", "Hash", "Seq Scan") for n in nodes)
