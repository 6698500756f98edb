"""The import pipeline: connector rows → normalise → seal → upsert in batches; bad rows → quarantine.

A bad row never aborts an import and is never dropped: it is quarantined with its reference, field
and reason. Duplicate codes within one import:
- ``on_duplicate="quarantine"`` (files): the first valid occurrence wins, later ones are quarantined
  with the row of the first. An export listing one dossier twice is a data error worth seeing.
- ``on_duplicate="last_wins"`` (API sync): a record updated while we page through the results can
  legitimately come twice; the later copy is newer, so it wins.

Preparing a batch (normalise + encrypt + hash + COPY text) is pure CPU work. With ``workers > 0`` it
runs in that many worker processes while this process reads the source and talks to the database,
because a million-row file takes about 40 µs of Python per row and one core cannot do 50,000 rows/s.
Batches are consumed in order, so counts, duplicate handling and row references do not depend on it.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any, Literal

from sqlalchemy.orm import Session

from callcenter.core.pii import PiiCipher
from callcenter.intake.adapters.base import Connector, SourceRow
from callcenter.intake.adapters.onestop_api import OneStopApiClient
from callcenter.intake.mapping import MappingConfig
from callcenter.intake.models import ImportRun
from callcenter.intake.normalise import DossierRecord, FieldError, Rules, normalise_record
from callcenter.intake.sealing import SealedDossier, Sealer, copy_line
from callcenter.intake.service import (
    ImportCounts,
    Rejection,
    StagedBatch,
    finish_import_run,
    get_watermark,
    quarantine_records,
    set_watermark,
    start_import_run,
    upsert_sealed,
    upsert_staged,
)

log = logging.getLogger(__name__)

DuplicatePolicy = Literal["quarantine", "last_wins"]
ProgressCallback = Callable[[int], None]


@dataclass
class PreparedBatch:
    """A batch after the CPU work, by row index: good rows (index, code, COPY line or sealed record)
    and rejected ones (index, errors). Row references and raw values stay with the caller."""

    good: list[tuple[int, str, Any]] = field(default_factory=list)
    rejected: list[tuple[int, list[FieldError]]] = field(default_factory=list)
    agencies: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)
    latest_update: datetime | None = None


class BatchPreparer:
    """Normalises and seals batches; the same code runs in-process and in worker processes."""

    def __init__(self, *, mapping: MappingConfig, cipher: PiiCipher, now: datetime, as_copy: bool) -> None:
        self._rules = Rules(mapping)
        self._sealer = Sealer(cipher)
        self._now = now
        self._as_copy = as_copy

    def prepare(self, rows: Sequence[SourceRow]) -> PreparedBatch:
        batch = PreparedBatch()
        for index, row in enumerate(rows):
            if row.problem is not None:
                batch.rejected.append((index, [row.problem]))
                continue
            result = normalise_record(row.values, rules=self._rules, now=self._now)
            if not isinstance(result, DossierRecord):
                batch.rejected.append((index, result))
                continue
            if result.source_updated_at is not None and (
                batch.latest_update is None or result.source_updated_at > batch.latest_update
            ):
                batch.latest_update = result.source_updated_at
            sealed = self._sealer.seal(result)
            batch.agencies[sealed.agency_code] = sealed.agency_name
            batch.fields[sealed.field_code] = sealed.field_name
            batch.good.append((index, sealed.code, copy_line(sealed) if self._as_copy else sealed))
        return batch


# Worker-process state, set once by the pool initializer (a cipher cannot be pickled).
_WORKER: BatchPreparer | None = None


def _init_worker(mapping: MappingConfig, key: bytes, hash_key: bytes, now: datetime, as_copy: bool) -> None:
    global _WORKER
    _WORKER = BatchPreparer(mapping=mapping, cipher=PiiCipher(key, hash_key), now=now, as_copy=as_copy)


def _prepare_in_worker(rows: Sequence[SourceRow]) -> PreparedBatch:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER.prepare(rows)


@dataclass
class ImportResult:
    run: ImportRun
    counts: ImportCounts
    latest_update: datetime | None


def _batches(rows: Iterable[SourceRow], size: int) -> Iterator[list[SourceRow]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


def run_import(
    session: Session,
    *,
    connector: Connector,
    source: str,
    mapping: MappingConfig,
    cipher: PiiCipher,
    now: datetime,
    batch_size: int = 5000,
    on_duplicate: DuplicatePolicy = "quarantine",
    workers: int = 0,
    worker_keys: tuple[bytes, bytes] | None = None,
    progress: ProgressCallback | None = None,
) -> ImportResult:
    """Import everything the connector yields; return the run with its counts. Never commits.

    ``workers`` > 0 prepares batches in worker processes; they need the key material
    (``worker_keys`` = PII key, phone-hash key) to build their own cipher.
    """
    run = start_import_run(session, source=source, kind=connector.kind, location=connector.location, now=now)
    counts = ImportCounts()
    as_copy = session.connection().dialect.name == "postgresql"
    state = _DedupState(on_duplicate)
    latest: datetime | None = None

    prepared: Iterator[tuple[list[SourceRow], PreparedBatch]]
    pool: ProcessPoolExecutor | None = None
    if workers > 0:
        if worker_keys is None:
            raise ValueError("worker processes need worker_keys=(pii_key, phone_hash_key)")
        pool = ProcessPoolExecutor(
            max_workers=workers,
            # spawn, not fork: the parent holds database connections and maybe threads.
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(mapping, worker_keys[0], worker_keys[1], now, as_copy),
        )
        prepared = _in_pool(pool, _batches(connector.rows(), batch_size), ahead=workers * 2)
    else:
        preparer = BatchPreparer(mapping=mapping, cipher=cipher, now=now, as_copy=as_copy)
        prepared = ((rows, preparer.prepare(rows)) for rows in _batches(connector.rows(), batch_size))
    try:
        for rows, batch in prepared:
            if batch.latest_update is not None and (latest is None or batch.latest_update > latest):
                latest = batch.latest_update
            good, rejections = state.filter(rows, batch, connector)
            if as_copy:
                staged = StagedBatch(
                    payload="".join(item for _, item in good).encode("utf-8"),
                    rows=len(good),
                    agencies=batch.agencies,
                    fields=batch.fields,
                )
                counts.add(upsert_staged(session, batch=staged, source=source, now=now))
            else:
                sealed: list[SealedDossier] = [item for _, item in good]
                counts.add(upsert_sealed(session, sealed=sealed, source=source, now=now))
            counts.unchanged += state.superseded_in_batch
            counts.quarantined += quarantine_records(
                session, rejections=rejections, source=source, import_run_id=run.id, cipher=cipher, now=now
            )
            if progress is not None:
                progress(len(batch.good) + len(batch.rejected))
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    finish_import_run(session, run=run, counts=counts, now=now)
    log.info(
        "import %s from %s: %d inserted, %d updated, %d unchanged, %d quarantined",
        run.id,
        source,
        counts.inserted,
        counts.updated,
        counts.unchanged,
        counts.quarantined,
    )
    return ImportResult(run=run, counts=counts, latest_update=latest)


def _in_pool(
    pool: ProcessPoolExecutor, batches: Iterator[list[SourceRow]], *, ahead: int
) -> Iterator[tuple[list[SourceRow], PreparedBatch]]:
    """Prepare batches in the pool, at most ``ahead`` in flight (bounded memory), yielded in order."""
    pending: deque[tuple[list[SourceRow], Future[PreparedBatch]]] = deque()
    for rows in batches:
        pending.append((rows, pool.submit(_prepare_in_worker, rows)))
        if len(pending) >= ahead:
            rows_done, future = pending.popleft()
            yield rows_done, future.result()
    while pending:
        rows_done, future = pending.popleft()
        yield rows_done, future.result()


class _DedupState:
    """Applies the duplicate-code policy across the batches of one import."""

    def __init__(self, policy: DuplicatePolicy) -> None:
        self.policy = policy
        # code → row reference of its first valid occurrence (quarantine policy only).
        self.first_seen: dict[str, str] = {}
        self.superseded_in_batch = 0

    def filter(
        self, rows: Sequence[SourceRow], batch: PreparedBatch, connector: Connector
    ) -> tuple[list[tuple[str, Any]], list[Rejection]]:
        rejections = [
            Rejection(rows[i].ref, errors, connector.raw_record(rows[i].raw)) for i, errors in batch.rejected
        ]
        self.superseded_in_batch = 0
        good: list[tuple[str, Any]] = []
        if self.policy == "quarantine":
            first_seen = self.first_seen
            for index, code, item in batch.good:
                first = first_seen.get(code)
                if first is None:
                    first_seen[code] = rows[index].ref
                    good.append((code, item))
                else:
                    reason = f"duplicate dossier code in this import (first at {first}); this copy ignored"
                    row = rows[index]
                    raw = connector.raw_record(row.raw)
                    rejections.append(Rejection(row.ref, [FieldError("code", reason)], raw))
            return good, rejections
        # last_wins: keep only the last copy of a code within the batch; later batches update.
        last: dict[str, Any] = {}
        for _index, code, item in batch.good:
            if code in last:
                self.superseded_in_batch += 1
                del last[code]  # re-insert at the end to keep the later position
            last[code] = item
        good = list(last.items())
        return good, rejections


def sync_api(
    session: Session,
    *,
    client: OneStopApiClient,
    source: str,
    mapping: MappingConfig,
    cipher: PiiCipher,
    now: datetime,
    overlap: timedelta = timedelta(minutes=5),
    full: bool = False,
    batch_size: int = 5000,
    progress: ProgressCallback | None = None,
) -> ImportResult:
    """Pull every record updated since the stored watermark, upsert it, move the watermark on.

    ``full`` ignores the watermark and reads everything (an operator's repair run).

    The request asks from ``watermark - overlap``: a record updated while an earlier sync paged
    through the results can shift across a page boundary and be missed; the overlap fetches it
    again next time (re-reading a record is harmless, its content hash makes it a no-op). The
    watermark only moves when the whole sync succeeded, in the same transaction.
    """
    watermark = None if full else get_watermark(session, source=source)
    client.updated_since = watermark - overlap if watermark is not None else None
    result = run_import(
        session,
        connector=client,
        source=source,
        mapping=mapping,
        cipher=cipher,
        now=now,
        batch_size=batch_size,
        on_duplicate="last_wins",
        progress=progress,
    )
    if result.latest_update is not None:
        set_watermark(session, source=source, watermark=result.latest_update, now=now)
    return result
