"""Intake service: idempotent upsert of dossiers, reference data, quarantine, import runs.

Functions take keyword-only arguments and an explicit session and never commit: the task, the CLI
command or the test decides when the unit of work ends.

Upsert rules (the same on both databases; ``tests/intake/test_service.py`` runs them on both):
- ``(source, code)`` identifies a dossier. A record whose keyed content hash equals the stored one
  and whose timeliness has not moved (a pending dossier becomes overdue as time passes) is
  *unchanged* and costs no write.
- A record older than the stored one (``source_updated_at`` earlier) is stale and also counts as
  unchanged: an API page read late must not undo a newer update.
- Otherwise the dossier is updated; an insert, or an update that changes status, timeliness or the
  return date, appends a row to ``dossier_status_history``.
PostgreSQL takes a bulk path (COPY into a temporary table, one ``INSERT … ON CONFLICT … WHERE
content_hash differs`` per batch, history written by the same statement); SQLite a plain batched one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import Connection, Table, bindparam, insert, select, text, update
from sqlalchemy.orm import Session

from callcenter.core.db import dialect_insert
from callcenter.core.pii import PiiCipher
from callcenter.intake.models import (
    Agency,
    Dossier,
    DossierStatus,
    DossierStatusHistory,
    Field,
    ImportRun,
    QuarantinedRecord,
    SyncState,
)
from callcenter.intake.normalise import DossierRecord, FieldError, KnownReferences, derive_timeliness
from callcenter.intake.sealing import STAGE_COLUMNS, SealedDossier, Sealer, copy_payload

# The raw record kept in quarantine is capped: a 10 MB line is evidence enough in its first 64 KB.
MAX_QUARANTINE_RAW = 64 * 1024
# SQLite allows 32766 bound parameters per statement; stay far below.
_SQLITE_IN_CHUNK = 500

UpsertMethod = Literal["auto", "bulk", "plain"]

_DOSSIERS = cast(Table, Dossier.__table__)
_HISTORY = cast(Table, DossierStatusHistory.__table__)
_QUARANTINE = cast(Table, QuarantinedRecord.__table__)


@dataclass
class ImportCounts:
    """What an import did, row by row."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0

    def add(self, other: ImportCounts) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.quarantined += other.quarantined

    @property
    def total(self) -> int:
        return self.inserted + self.updated + self.unchanged + self.quarantined


@dataclass(frozen=True)
class Rejection:
    """A record that goes to quarantine: where it came from, what is wrong, the raw values."""

    row_ref: str
    errors: Sequence[FieldError]
    raw: Any = None


@dataclass
class StagedBatch:
    """A batch prepared for the PostgreSQL bulk path: COPY text plus the references it uses."""

    payload: bytes
    rows: int
    agencies: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)


@dataclass
class ReferenceCache:
    """Agency and field ids already ensured during one import (code → id)."""

    agencies: dict[str, int] = field(default_factory=dict)
    fields: dict[str, int] = field(default_factory=dict)


# --- reference data -------------------------------------------------------------------------------


def known_references(session: Session) -> KnownReferences:
    """The stored agencies' and fields' codes by name, for records that give a name and no code."""
    agencies = session.execute(select(Agency.code, Agency.name)).all()
    fields = session.execute(select(Field.code, Field.name)).all()
    return KnownReferences(agencies=KnownReferences.by_name(agencies), fields=KnownReferences.by_name(fields))


def get_or_create_agency(session: Session, *, code: str, name: str) -> Agency:
    """The agency with this code, created with this name if new (an existing name is kept)."""
    ids = ensure_reference_ids(session, model=Agency, items={code: name})
    agency = session.get(Agency, ids[code])
    assert agency is not None
    return agency


def get_or_create_field(session: Session, *, code: str, name: str) -> Field:
    """The field (lĩnh vực) with this code, created with this name if new."""
    ids = ensure_reference_ids(session, model=Field, items={code: name})
    found = session.get(Field, ids[code])
    assert found is not None
    return found


def ensure_reference_ids(
    session: Session,
    *,
    model: type[Agency] | type[Field],
    items: Mapping[str, str],
    known: dict[str, int] | None = None,
) -> dict[str, int]:
    """Code → id for every given agency or field, inserting the missing ones (race-safe).

    ``known`` is a cache the caller keeps for one import: a source has a few dozen agencies, so
    after the first batch no query is needed at all.
    """
    if known is not None and all(code in known for code in items):
        return {code: known[code] for code in items}
    ids = _ensure_reference_ids(session, model=model, items=items)
    if known is not None:
        known.update(ids)
    return ids


def _ensure_reference_ids(
    session: Session, *, model: type[Agency] | type[Field], items: Mapping[str, str]
) -> dict[str, int]:
    if not items:
        return {}
    table = cast(Table, model.__table__)
    codes = list(items)
    conn = session.connection()
    missing = [c for c in codes if c not in _select_ids(conn, table, codes)]
    if missing:
        rows: list[dict[str, Any]] = [{"code": c, "name": items[c][:256]} for c in missing]
        if model is Agency:
            rows = [{**row, "organisations_only": False} for row in rows]
        # Another import may create the same agency concurrently: its row wins, ours is skipped.
        conn.execute(
            dialect_insert(conn.dialect.name)(table).on_conflict_do_nothing(index_elements=["code"]), rows
        )
    return _select_ids(conn, table, codes)


def _select_ids(conn: Connection, table: Any, codes: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(codes), _SQLITE_IN_CHUNK):
        chunk = codes[start : start + _SQLITE_IN_CHUNK]
        for row in conn.execute(select(table.c.code, table.c.id).where(table.c.code.in_(chunk))):
            found[row.code] = row.id
    return found


# --- upsert ---------------------------------------------------------------------------------------


def upsert_dossiers(
    session: Session,
    *,
    records: Iterable[DossierRecord],
    source: str,
    cipher: PiiCipher,
    now: datetime,
    method: UpsertMethod = "auto",
) -> ImportCounts:
    """Insert new dossiers, update changed ones, skip unchanged ones; return the counts.

    ``records`` must have distinct codes (the importer guarantees it for files and API pages).
    """
    sealer = Sealer(cipher)
    return upsert_sealed(
        session, sealed=[sealer.seal(r) for r in records], source=source, now=now, method=method
    )


def upsert_sealed(
    session: Session,
    *,
    sealed: Sequence[SealedDossier],
    source: str,
    now: datetime,
    method: UpsertMethod = "auto",
    references: ReferenceCache | None = None,
) -> ImportCounts:
    """Upsert already-sealed dossiers with the bulk path on PostgreSQL, the plain one elsewhere."""
    if not sealed:
        return ImportCounts()
    codes = [s.code for s in sealed]
    if len(set(codes)) != len(codes):
        raise ValueError("a batch must not hold the same dossier code twice")
    bulk = session.connection().dialect.name == "postgresql" and method != "plain"
    if method == "bulk" and not bulk:
        raise ValueError("the bulk upsert needs PostgreSQL")
    if bulk:
        staged = StagedBatch(
            payload=copy_payload(sealed),
            rows=len(sealed),
            agencies={s.agency_code: s.agency_name for s in sealed},
            fields={s.field_code: s.field_name for s in sealed},
        )
        return upsert_staged(session, batch=staged, source=source, now=now, references=references)
    return _plain_upsert(
        session, sealed=sealed, source=source, now=now, references=references or ReferenceCache()
    )


_PG_STAGE = """
CREATE TEMPORARY TABLE IF NOT EXISTS intake_stage (
    code text NOT NULL, agency_code text NOT NULL, field_code text NOT NULL, procedure_name text,
    submitter_name_enc bytea NOT NULL, phone_enc bytea NOT NULL, phone_hash text NOT NULL,
    phone_kind text NOT NULL, national_id_enc bytea, is_organisation boolean NOT NULL,
    received_at timestamptz NOT NULL, due_at timestamptz, returned_at timestamptz,
    status text NOT NULL, timeliness text NOT NULL, source_updated_at timestamptz,
    content_hash text NOT NULL
)
"""

# One statement per batch (two variants below).
_PG_UPSERT_TEMPLATE = """
WITH {old}up AS (
    INSERT INTO dossiers (
        source, code, agency_id, field_id, procedure_name, submitter_name_enc, phone_enc, phone_hash,
        phone_kind, national_id_enc, is_organisation, received_at, due_at, returned_at, status,
        timeliness, source_updated_at, content_hash, created_at, updated_at)
    SELECT :source, s.code, a.id, f.id, s.procedure_name, s.submitter_name_enc, s.phone_enc,
        s.phone_hash, s.phone_kind, s.national_id_enc, s.is_organisation, s.received_at, s.due_at,
        s.returned_at, s.status, s.timeliness, s.source_updated_at, s.content_hash, :now, :now
    FROM intake_stage s
    JOIN agencies a ON a.code = s.agency_code
    JOIN fields f ON f.code = s.field_code
    ON CONFLICT (source, code) DO UPDATE SET
        agency_id = excluded.agency_id, field_id = excluded.field_id,
        procedure_name = excluded.procedure_name, submitter_name_enc = excluded.submitter_name_enc,
        phone_enc = excluded.phone_enc, phone_hash = excluded.phone_hash,
        phone_kind = excluded.phone_kind, national_id_enc = excluded.national_id_enc,
        is_organisation = excluded.is_organisation, received_at = excluded.received_at,
        due_at = excluded.due_at, returned_at = excluded.returned_at, status = excluded.status,
        timeliness = excluded.timeliness, source_updated_at = excluded.source_updated_at,
        content_hash = excluded.content_hash, updated_at = excluded.updated_at
    WHERE (dossiers.content_hash <> excluded.content_hash OR dossiers.timeliness <> excluded.timeliness)
      AND (excluded.source_updated_at IS NULL OR dossiers.source_updated_at IS NULL
           OR excluded.source_updated_at >= dossiers.source_updated_at)
    RETURNING dossiers.id, (dossiers.xmax = 0) AS inserted, dossiers.status, dossiers.timeliness,
        dossiers.returned_at
), history AS (
    INSERT INTO dossier_status_history (dossier_id, status, timeliness, returned_at, recorded_at)
    SELECT up.id, up.status, up.timeliness, up.returned_at, :now
    FROM up {history_filter}
)
SELECT count(*) FILTER (WHERE inserted) AS inserted, count(*) FILTER (WHERE NOT inserted) AS updated
FROM up
"""
# All parts of a WITH see the same snapshot, so "old" holds the rows as they were before the upsert;
# history is appended for inserts and for changes of what the survey cares about (status,
# timeliness, return date). LATERAL with OFFSET 0 (see _PG_UNCHANGED): one index probe per staged
# row, whatever the (absent) statistics of the staging table and of a just-grown dossiers table say.
_PG_UPSERT = _PG_UPSERT_TEMPLATE.format(
    old="""old AS (
    SELECT d.id, d.status, d.timeliness, d.returned_at
    FROM intake_stage s
    CROSS JOIN LATERAL (
        SELECT id, status, timeliness, returned_at FROM dossiers
        WHERE source = :source AND code = s.code
        OFFSET 0
    ) d
), """,
    history_filter="""LEFT JOIN old ON old.id = up.id
    WHERE old.id IS NULL OR old.status <> up.status OR old.timeliness <> up.timeliness
       OR old.returned_at IS DISTINCT FROM up.returned_at""",
)
# A source's first import (it had no dossiers when the import began, and the codes of one import
# are distinct): every row is new, there is no old state to compare with, and the index probe per
# row is skipped. Every returned row gets its first history entry.
_PG_UPSERT_FIRST = _PG_UPSERT_TEMPLATE.format(old="", history_filter="")


def upsert_staged(
    session: Session,
    *,
    batch: StagedBatch,
    source: str,
    now: datetime,
    references: ReferenceCache | None = None,
    first_import: bool = False,
) -> ImportCounts:
    """The PostgreSQL bulk path: COPY the batch into a temporary table, upsert it in one statement.

    ``first_import``: the source had no dossiers when this import began (see ``_PG_UPSERT_FIRST``).
    """
    if batch.rows == 0:
        return ImportCounts()
    references = references or ReferenceCache()
    ensure_reference_ids(session, model=Agency, items=batch.agencies, known=references.agencies)
    ensure_reference_ids(session, model=Field, items=batch.fields, known=references.fields)
    conn = session.connection()
    conn.execute(text(_PG_STAGE))
    conn.execute(text("TRUNCATE intake_stage"))
    driver = conn.connection.driver_connection
    assert driver is not None
    copy_sql = f"COPY intake_stage ({', '.join(STAGE_COLUMNS)}) FROM STDIN"
    with driver.cursor() as cursor, cursor.copy(copy_sql) as copy:
        copy.write(batch.payload)
    statement = _PG_UPSERT_FIRST if first_import else _PG_UPSERT
    row = conn.execute(text(statement), {"source": source, "now": now}).one()
    inserted, updated = int(row.inserted), int(row.updated)
    return ImportCounts(inserted=inserted, updated=updated, unchanged=batch.rows - inserted - updated)


def _plain_upsert(
    session: Session,
    *,
    sealed: Sequence[SealedDossier],
    source: str,
    now: datetime,
    references: ReferenceCache,
) -> ImportCounts:
    """The portable path (SQLite): read the batch's existing rows, then insert and update in bulk."""
    agencies = {s.agency_code: s.agency_name for s in sealed}
    agency_ids = ensure_reference_ids(session, model=Agency, items=agencies, known=references.agencies)
    fields = {s.field_code: s.field_name for s in sealed}
    field_ids = ensure_reference_ids(session, model=Field, items=fields, known=references.fields)
    conn = session.connection()
    table = _DOSSIERS
    existing: dict[str, Any] = {}
    codes = [s.code for s in sealed]
    for start in range(0, len(codes), _SQLITE_IN_CHUNK):
        chunk = codes[start : start + _SQLITE_IN_CHUNK]
        query = select(
            table.c.id,
            table.c.code,
            table.c.content_hash,
            table.c.status,
            table.c.timeliness,
            table.c.returned_at,
            table.c.source_updated_at,
        ).where(table.c.source == source, table.c.code.in_(chunk))
        for row in conn.execute(query):
            existing[row.code] = row

    counts = ImportCounts()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    for s in sealed:
        values = _row_values(s, agency_ids=agency_ids, field_ids=field_ids, now=now)
        old = existing.get(s.code)
        if old is None:
            inserts.append({"source": source, "code": s.code, "created_at": now, **values})
            continue
        stale = (
            s.source_updated_at is not None
            and old.source_updated_at is not None
            and s.source_updated_at < old.source_updated_at
        )
        if (old.content_hash == s.content_hash and old.timeliness == s.timeliness) or stale:
            counts.unchanged += 1
            continue
        updates.append({"_id": old.id, **values})
        counts.updated += 1
        if (old.status, old.timeliness, old.returned_at) != (s.status, s.timeliness, s.returned_at):
            history.append(_history_row(old.id, s, now))
    if inserts:
        result = conn.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), inserts)
        new_ids = [row.id for row in result]
        counts.inserted = len(new_ids)
        by_code = {s.code: s for s in sealed}
        history.extend(
            _history_row(i, by_code[r["code"]], now) for i, r in zip(new_ids, inserts, strict=True)
        )
    if updates:
        columns: dict[str, Any] = {name: bindparam(name) for name in updates[0] if name != "_id"}
        conn.execute(update(table).where(table.c.id == bindparam("_id")).values(columns), updates)
    if history:
        conn.execute(insert(_HISTORY), history)
    return counts


def _row_values(
    s: SealedDossier, *, agency_ids: Mapping[str, int], field_ids: Mapping[str, int], now: datetime
) -> dict[str, Any]:
    return {
        "agency_id": agency_ids[s.agency_code],
        "field_id": field_ids[s.field_code],
        "procedure_name": s.procedure_name,
        "submitter_name_enc": s.submitter_name_enc,
        "phone_enc": s.phone_enc,
        "phone_hash": s.phone_hash,
        "phone_kind": s.phone_kind,
        "national_id_enc": s.national_id_enc,
        "is_organisation": s.is_organisation,
        "received_at": s.received_at,
        "due_at": s.due_at,
        "returned_at": s.returned_at,
        "status": s.status,
        "timeliness": s.timeliness,
        "source_updated_at": s.source_updated_at,
        "content_hash": s.content_hash,
        "updated_at": now,
    }


def _history_row(dossier_id: int, s: SealedDossier, now: datetime) -> dict[str, Any]:
    return {
        "dossier_id": dossier_id,
        "status": s.status,
        "timeliness": s.timeliness,
        "returned_at": s.returned_at,
        "recorded_at": now,
    }


# derive_timeliness() in SQL, so that only matching codes come back (parsing a timestamp per row
# in Python cost more than the rest of a re-import). test_pipeline checks it on both databases.
# One index probe per code, even before PostgreSQL has statistics for a table that just grew by a
# million rows. LATERAL alone does not ensure it: the planner pulls a simple LATERAL subquery up
# into the join and, estimating ~10 rows for the source, hashed the whole table for every batch
# (~0.9 s each, 9 s of a 1,000,000-row re-import, until the prepared statement's generic plan took
# over). ``OFFSET 0`` keeps the subquery as written: 0.04 s per batch. test_service checks the plan.
_PROBE_SEPARATOR = "\x1f"  # chr(31) in the SQL below
_PG_UNCHANGED = """
SELECT p.code
FROM unnest(string_to_array(:codes, chr(31)), string_to_array(:hashes, chr(31))) AS p(code, hash)
CROSS JOIN LATERAL (
    SELECT content_hash, timeliness, status, due_at, returned_at FROM dossiers
    WHERE source = :source AND code = p.code
    OFFSET 0
) d
WHERE d.content_hash = p.hash
  AND d.timeliness = CASE
      WHEN d.returned_at IS NOT NULL THEN
          CASE WHEN d.due_at IS NOT NULL AND d.returned_at > d.due_at THEN 'late' ELSE 'on_time' END
      WHEN d.status = 'cancelled' THEN 'cancelled'
      WHEN d.due_at IS NOT NULL AND CAST(:now AS timestamptz) > d.due_at THEN 'overdue'
      ELSE 'pending'
  END
"""


def source_has_dossiers(session: Session, *, source: str) -> bool:
    """Whether anything was imported from this source before (worth probing for unchanged rows)."""
    query = select(_DOSSIERS.c.id).where(_DOSSIERS.c.source == source).limit(1)
    return session.connection().execute(query).first() is not None


def find_unchanged(session: Session, *, source: str, digests: Mapping[str, str], now: datetime) -> set[str]:
    """Codes whose stored dossier has this content hash and still the same timeliness at ``now``.

    Lets a re-import skip parsing and encrypting rows the database already holds; the upsert
    applies the same rule, so skipping changes nothing but the time it takes.
    """
    if not digests:
        return set()
    conn = session.connection()
    codes = list(digests)
    if conn.dialect.name == "postgresql":
        # Two joined strings, split by the server: as array parameters, psycopg would check every
        # element with a regex in Python. A code holding the separator is simply not probed (it is
        # then prepared and upserted like a changed row, which gives the same result); nor is one
        # holding a NUL, which no PostgreSQL parameter accepts (the normaliser quarantines it).
        probed = {
            code: digest
            for code, digest in digests.items()
            if _PROBE_SEPARATOR not in code and "\x00" not in code
        }
        params = {
            "source": source,
            "now": now,
            "codes": _PROBE_SEPARATOR.join(probed),
            "hashes": _PROBE_SEPARATOR.join(probed.values()),
        }
        return set(conn.execute(text(_PG_UNCHANGED), params).scalars().all())
    rows: list[Any] = []
    t = _DOSSIERS.c
    for start in range(0, len(codes), _SQLITE_IN_CHUNK):
        chunk = codes[start : start + _SQLITE_IN_CHUNK]
        chunk_query = select(t.code, t.content_hash, t.timeliness, t.status, t.due_at, t.returned_at).where(
            t.source == source, t.code.in_(chunk)
        )
        rows.extend(conn.execute(chunk_query))
    unchanged: set[str] = set()
    for row in rows:
        if row.content_hash != digests[row.code]:
            continue
        cancelled = row.status == DossierStatus.CANCELLED.value
        timeliness = derive_timeliness(due=row.due_at, returned=row.returned_at, now=now, cancelled=cancelled)
        if row.timeliness == timeliness.value:
            unchanged.add(row.code)
    return unchanged


# --- quarantine and runs --------------------------------------------------------------------------


def quarantine_records(
    session: Session,
    *,
    rejections: Sequence[Rejection],
    source: str,
    import_run_id: int | None,
    cipher: PiiCipher,
    now: datetime,
    skip_known: bool = False,
) -> int:
    """Store rejected records with their reasons; the raw record is encrypted (it holds PII).

    ``skip_known`` (API syncs, where a record id is stable): a record already quarantined for the
    same reason is not stored again — every sync re-reads its overlap window, and an unfixed bad
    record would otherwise pile up one entry per sync. Returns the number of rejections handled.
    """
    if not rejections:
        return 0
    if skip_known:
        known = _known_quarantine(session, source=source, refs=[_row_ref(r) for r in rejections])
        fresh = [r for r in rejections if (_row_ref(r), _reason(r)) not in known]
    else:
        fresh = list(rejections)
    if not fresh:
        return len(rejections)
    rows = [
        {
            "import_run_id": import_run_id,
            "source": source,
            "row_ref": _row_ref(r),
            "field": _storable(",".join(dict.fromkeys(e.field for e in r.errors)))[:64] or None,
            "reason": _reason(r),
            "raw_enc": cipher.encrypt_optional(_raw_text(r.raw)),
            "created_at": now,
        }
        for r in fresh
    ]
    session.connection().execute(insert(_QUARANTINE), rows)
    return len(rejections)


def _storable(text_: str) -> str:
    """Text a PostgreSQL column accepts: a NUL (e.g. in an API record id) shown as ``\\x00``.

    The raw record needs no such care: it is stored encrypted (bytes), and as JSON when not text.
    """
    return text_.replace("\x00", "\\x00")


def _row_ref(rejection: Rejection) -> str:
    return _storable(rejection.row_ref)[:128]


def _reason(rejection: Rejection) -> str:
    return _storable("; ".join(f"{e.field}: {e.reason}" for e in rejection.errors))


def _known_quarantine(session: Session, *, source: str, refs: Sequence[str]) -> set[tuple[str, str]]:
    t = _QUARANTINE.c
    known: set[tuple[str, str]] = set()
    for start in range(0, len(refs), _SQLITE_IN_CHUNK):
        chunk = refs[start : start + _SQLITE_IN_CHUNK]
        query = select(t.row_ref, t.reason).where(t.source == source, t.row_ref.in_(chunk))
        known.update((row.row_ref, row.reason) for row in session.connection().execute(query))
    return known


def _raw_text(raw: Any) -> str | None:
    if raw is None:
        return None
    text_ = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=str)
    if len(text_) > MAX_QUARANTINE_RAW:
        return text_[:MAX_QUARANTINE_RAW] + f"…[truncated, {len(text_)} characters in all]"
    return text_


def start_import_run(
    session: Session, *, source: str, kind: str, location: str | None, now: datetime
) -> ImportRun:
    """Record the start of an import; its counts are filled in by :func:`finish_import_run`."""
    run = ImportRun(
        source=source,
        kind=kind,
        location=location,
        started_at=now,
        rows_seen=0,
        inserted=0,
        updated=0,
        unchanged=0,
        quarantined=0,
    )
    session.add(run)
    session.flush()
    return run


def finish_import_run(
    session: Session, *, run: ImportRun, counts: ImportCounts, now: datetime, error: str | None = None
) -> ImportRun:
    run.rows_seen = counts.total
    run.inserted = counts.inserted
    run.updated = counts.updated
    run.unchanged = counts.unchanged
    run.quarantined = counts.quarantined
    run.finished_at = now
    run.error = error
    session.flush()
    return run


def get_watermark(session: Session, *, source: str) -> datetime | None:
    """The ``updated_at`` of the newest record already synced from this source, if any."""
    state = session.get(SyncState, source)
    return state.watermark if state is not None else None


def set_watermark(
    session: Session, *, source: str, watermark: datetime, now: datetime, reset: bool = False
) -> None:
    """Move the source's watermark forward (never backward, unless ``reset``: after a full sync,
    which read everything, the newest update seen is the watermark, even below a stored one that a
    bad date once pushed into the future)."""
    state = session.get(SyncState, source)
    if state is None:
        session.add(SyncState(source=source, watermark=watermark, updated_at=now))
    elif reset or state.watermark is None or watermark > state.watermark:
        state.watermark = watermark
        state.updated_at = now
    session.flush()
