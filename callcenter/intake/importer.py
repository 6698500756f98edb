"""The import pipeline: connector rows → screen → normalise → seal → upsert in batches.

A bad row never aborts an import and is never dropped: it is quarantined with its reference, field
and reason. Each batch goes through:

1. *Screening* (this process, in row order): rows the reader could not split are rejected;
   duplicate codes are handled by policy; on a re-import, rows whose raw content is already
   stored (``service.find_unchanged``) are counted as unchanged and skip all further work.
   - ``on_duplicate="quarantine"`` (files): the first occurrence of a code in the file wins, valid
     or not; later ones are quarantined naming the first row. A file listing a dossier twice is a
     data error worth seeing, and "first wins" does not depend on which copy happens to be valid.
   - ``on_duplicate="last_wins"`` (API sync): a record updated while we page through the results
     can legitimately come twice; the later copy is newer, so it wins.
2. *Preparation* (pure CPU: normalise, encrypt, hash, COPY text): in this process, or with
   ``workers > 0`` in worker processes while this one reads the source and talks to the database.
   A row costs ~30-40 µs of Python to prepare, so one core cannot reach 50,000 rows/s. Batches are
   consumed in order, so counts and row references do not depend on the number of workers.
3. *Upsert* of the good rows and quarantine of the rejected ones, in the caller's transaction.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.orm import Session

from callcenter.core.pii import PiiCipher
from callcenter.intake.adapters.base import Connector, SourceRow
from callcenter.intake.adapters.onestop_api import OneStopApiClient
from callcenter.intake.mapping import TARGET_FIELDS, MappingConfig, values_dict
from callcenter.intake.models import ImportRun
from callcenter.intake.normalise import (
    DossierRecord,
    FieldError,
    KnownReferences,
    Rules,
    accepted_datetime,
    clean_code,
    normalise_record,
)
from callcenter.intake.sealing import SealedDossier, Sealer, seal_copy_line
from callcenter.intake.service import (
    ImportCounts,
    ReferenceCache,
    Rejection,
    StagedBatch,
    find_unchanged,
    finish_import_run,
    get_watermark,
    known_references,
    quarantine_records,
    set_watermark,
    source_has_dossiers,
    start_import_run,
    upsert_sealed,
    upsert_staged,
)

log = logging.getLogger(__name__)

DuplicatePolicy = Literal["quarantine", "last_wins"]
ProgressCallback = Callable[[int], None]

# How far ahead of our clock the source's may run: a sync's watermark never passes now + this.
CLOCK_SKEW_ALLOWANCE = timedelta(minutes=5)


@dataclass
class PreparedBatch:
    """A batch after the CPU work, by position in the input: good rows (sealed records, or for
    PostgreSQL their COPY text already joined and encoded in ``payload``: one bytes object crosses
    the process boundary instead of a tuple per row), rejected ones (position, errors) and the
    agencies and fields they use."""

    good: list[SealedDossier] = field(default_factory=list)
    payload: bytes = b""
    good_rows: int = 0
    rejected: list[tuple[int, list[FieldError]]] = field(default_factory=list)
    agencies: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)
    latest_update: datetime | None = None  # the newest update time not in the future
    future_updates: int = 0  # update times later than now + CLOCK_SKEW_ALLOWANCE (left out above)

    def saw_update(self, updated: datetime | None, *, ceiling: datetime) -> None:
        """Count a record's update time towards the sync watermark, unless it lies in the future.

        A future time (a typo such as 2062 for 2026, or a source clock far ahead) is left out: as the
        watermark it would make every later sync ask from the future and get nothing, and even capped
        at now it would cancel the sync overlap for good. Such a record is simply fetched again by
        each sync (it stays ahead of the watermark), which is harmless: its content hash makes it a
        no-op.
        """
        if updated is None:
            return
        if updated > ceiling:
            self.future_updates += 1
        elif self.latest_update is None or updated > self.latest_update:
            self.latest_update = updated


class BatchPreparer:
    """Normalises and seals batches; the same code runs in-process and in worker processes."""

    def __init__(
        self,
        *,
        mapping: MappingConfig,
        cipher: PiiCipher,
        now: datetime,
        as_copy: bool,
        known: KnownReferences | None = None,
    ) -> None:
        self._rules = Rules(mapping, known=known)
        self._sealer = Sealer(cipher, context=mapping.fingerprint())
        self._now = now
        self._as_copy = as_copy

    def prepare(self, values: Sequence[tuple[Any, ...]], digests: Sequence[str]) -> PreparedBatch:
        """``values`` in TARGET_FIELDS order, with their source digests (see ``Sealer.source_digest``)."""
        batch = PreparedBatch()
        rules, now, sealer, as_copy = self._rules, self._now, self._sealer, self._as_copy
        ceiling = now + CLOCK_SKEW_ALLOWANCE
        lines: list[str] = []
        agencies, fields = batch.agencies, batch.fields
        for index, row_values in enumerate(values):
            result = normalise_record(values_dict(row_values), rules=rules, now=now)
            if not isinstance(result, DossierRecord):
                batch.rejected.append((index, result))
                # A refused record was still seen: its update time moves the sync watermark on
                # (only a valid one: it may be the very value the record was refused for).
                batch.saw_update(_updated_at(row_values), ceiling=ceiling)
                continue
            batch.saw_update(result.source_updated_at, ceiling=ceiling)
            agencies[result.agency_code] = result.agency_name
            fields[result.field_code] = result.field_name
            if as_copy:
                lines.append(seal_copy_line(sealer, result, digest=digests[index]))
            else:
                batch.good.append(sealer.seal(result, digest=digests[index]))
        batch.good_rows = len(lines) if as_copy else len(batch.good)
        batch.payload = "".join(lines).encode("utf-8")
        return batch


_UPDATED_AT = TARGET_FIELDS.index("updated_at")


def _updated_at(values: tuple[Any, ...]) -> datetime | None:
    return accepted_datetime(values[_UPDATED_AT]) if len(values) > _UPDATED_AT else None


# Worker-process state, set once by the pool initializer (a cipher cannot be pickled).
_WORKER: BatchPreparer | None = None


def _init_worker(
    mapping: MappingConfig, key: bytes, hash_key: bytes, now: datetime, as_copy: bool, known: KnownReferences
) -> None:
    global _WORKER
    _WORKER = BatchPreparer(
        mapping=mapping, cipher=PiiCipher(key, hash_key), now=now, as_copy=as_copy, known=known
    )


def _prepare_in_worker(values: list[tuple[Any, ...]], digests: list[str]) -> PreparedBatch:
    assert _WORKER is not None, "worker not initialised"
    with _cyclic_gc_paused():
        return _WORKER.prepare(values, digests)


@dataclass
class ImportResult:
    run: ImportRun
    counts: ImportCounts
    latest_update: datetime | None
    future_updates: int = 0  # records whose update time lies in the future (not in latest_update)


@dataclass
class ScreenedBatch:
    """What screening left for preparation, and what it already decided."""

    todo: list[SourceRow]
    digests: list[str]
    rejections: list[Rejection]
    unchanged: int
    seen: int


class _Screen:
    """Step 1: reader problems, the duplicate policy and the unchanged-row probe, in row order."""

    def __init__(
        self,
        session: Session,
        *,
        connector: Connector,
        policy: DuplicatePolicy,
        sealer: Sealer,
        source: str,
        now: datetime,
        probe: bool,
    ) -> None:
        self._session = session
        self._connector = connector
        self._policy = policy
        self._sealer = sealer
        self._source = source
        self._now = now
        self._probe = probe
        # code → reference of its first occurrence (quarantine policy).
        self._first_seen: dict[str, str] = {}

    def _reject(self, row: SourceRow, errors: list[FieldError]) -> Rejection:
        return Rejection(row.ref, errors, self._connector.raw_record(row.raw))

    def screen(self, rows: list[SourceRow]) -> ScreenedBatch:
        rejections: list[Rejection] = []
        kept: dict[str, SourceRow] = {}
        without_code: list[SourceRow] = []
        superseded = 0
        for row in rows:
            if row.problem is not None:
                rejections.append(self._reject(row, [row.problem]))
                continue
            code = clean_code(row.values[0])
            if not code:
                without_code.append(row)  # the normaliser names the missing code
                continue
            if self._policy == "quarantine":
                first = self._first_seen.get(code)
                if first is not None:
                    reason = f"duplicate dossier code in this import (first at {first}); this copy ignored"
                    rejections.append(self._reject(row, [FieldError("code", reason)]))
                    continue
                self._first_seen[code] = row.ref
            elif code in kept:
                superseded += 1
                del kept[code]  # re-inserted below: the later copy keeps the later position
            kept[code] = row
        digests = {code: self._sealer.source_digest(row.values) for code, row in kept.items()}
        unchanged: set[str] = set()
        if self._probe:
            unchanged = find_unchanged(self._session, source=self._source, digests=digests, now=self._now)
        todo = [row for code, row in kept.items() if code not in unchanged]
        todo_digests = [digests[code] for code in kept if code not in unchanged]
        todo.extend(without_code)
        todo_digests.extend(self._sealer.source_digest(row.values) for row in without_code)
        return ScreenedBatch(todo, todo_digests, rejections, len(unchanged) + superseded, len(rows))


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for a bulk import, then restore it and collect once.

    An import allocates millions of short-lived tuples and keeps a dict of every code seen; each
    automatic full collection walks all of it, which measured ~40 % of a re-import's CPU. The hot
    loop creates no reference cycles except for a malformed value's exception, collected at the end.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
            gc.collect()


def _batches(rows: Iterable[SourceRow], size: int) -> Iterator[list[SourceRow]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


_DONE = object()


def _read_ahead(batches: Iterator[list[SourceRow]], depth: int = 2) -> Iterator[list[SourceRow]]:
    """Read the next batches in a thread while this one waits for the database.

    Reading and splitting the source is Python work; the COPY, the upsert and the unchanged-row
    probe are waits on PostgreSQL that release the GIL. Overlapping them saves most of the reading
    time. At most ``depth`` batches wait (bounded memory); an error in the reader is re-raised here,
    and leaving early stops the reader.
    """
    ready: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    return
            put(_DONE)
        except BaseException as exc:  # handed over to the consumer, raised there
            put(exc)

    thread = threading.Thread(target=reader, name="intake-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


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
    if as_copy:
        # The commit of a bulk import need not wait for its WAL flush. Safe: an import is idempotent
        # and re-runnable, so if a crash loses the last moments of a committed import, running it
        # again restores the same state (the database itself stays consistent either way). LOCAL:
        # only the caller's transaction, which this function never commits.
        session.execute(text("SET LOCAL synchronous_commit = off"))
        # The per-batch statements run in tens of milliseconds; planned without statistics for a
        # just-grown table, their cost estimates crossed jit_above_cost and JIT compiling took
        # ~6 ms of each (0.6 s of a 1,000,000-row re-import).
        session.execute(text("SET LOCAL jit = off"))
    had_dossiers = source_has_dossiers(session, source=source)
    screen = _Screen(
        session,
        connector=connector,
        policy=on_duplicate,
        sealer=Sealer(cipher, context=mapping.fingerprint()),
        source=source,
        now=now,
        # On a first import nothing can be unchanged: skip the probe's round trips.
        probe=had_dossiers,
    )
    screened = (screen.screen(rows) for rows in _read_ahead(_batches(connector.rows(), batch_size)))
    references = ReferenceCache()
    latest: datetime | None = None
    future_updates = 0

    if workers > 0 and worker_keys is None:
        raise ValueError("worker processes need worker_keys=(pii_key, phone_hash_key)")
    known = known_references(session)
    preparation = _Preparation(
        BatchPreparer(mapping=mapping, cipher=cipher, now=now, as_copy=as_copy, known=known),
        workers=workers,
        pool_args=(mapping, *(worker_keys or (b"", b"")), now, as_copy, known),
    )
    prepared = preparation.run(screened)
    try:
        with _cyclic_gc_paused():
            for batch_in, batch in prepared:
                if batch.latest_update is not None and (latest is None or batch.latest_update > latest):
                    latest = batch.latest_update
                future_updates += batch.future_updates
                rejections = batch_in.rejections + [
                    Rejection(batch_in.todo[i].ref, errors, connector.raw_record(batch_in.todo[i].raw))
                    for i, errors in batch.rejected
                ]
                if as_copy:
                    staged = StagedBatch(
                        payload=batch.payload,
                        rows=batch.good_rows,
                        agencies=batch.agencies,
                        fields=batch.fields,
                    )
                    counts.add(
                        upsert_staged(
                            session,
                            batch=staged,
                            source=source,
                            now=now,
                            references=references,
                            # Codes are distinct across the whole import only under "quarantine".
                            first_import=not had_dossiers and on_duplicate == "quarantine",
                        )
                    )
                else:
                    counts.add(
                        upsert_sealed(
                            session, sealed=batch.good, source=source, now=now, references=references
                        )
                    )
                counts.unchanged += batch_in.unchanged
                counts.quarantined += quarantine_records(
                    session,
                    rejections=rejections,
                    source=source,
                    import_run_id=run.id,
                    cipher=cipher,
                    now=now,
                    skip_known=connector.kind == "api",
                )
                if progress is not None:
                    progress(batch_in.seen)
    finally:
        preparation.close()
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
    return ImportResult(run=run, counts=counts, latest_update=latest, future_updates=future_updates)


class _Preparation:
    """Step 2, in order: batches that are mostly work go to worker processes, the rest stay here.

    A re-import leaves a handful of rows per batch to prepare (the unchanged ones were screened
    out): shipping those to a worker costs more than it saves, so the pool is only started — with
    spawn, which takes seconds — when a batch is mostly work. At most ``workers + 1`` batches are in
    flight (bounded memory). Only plain tuples and strings cross the process boundary.
    """

    def __init__(self, local: BatchPreparer, *, workers: int, pool_args: tuple[Any, ...]) -> None:
        self._local = local
        self._workers = workers
        self._pool_args = pool_args
        self._pool: ProcessPoolExecutor | None = None

    def _submit(self, batch: ScreenedBatch) -> Future[PreparedBatch] | PreparedBatch:
        values = [row.values for row in batch.todo]
        if self._workers == 0 or len(batch.todo) * 4 < batch.seen:
            return self._local.prepare(values, batch.digests)
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self._workers,
                # spawn, not fork: the parent holds database connections and maybe threads.
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=self._pool_args,
            )
        return self._pool.submit(_prepare_in_worker, values, batch.digests)

    def run(self, batches: Iterator[ScreenedBatch]) -> Iterator[tuple[ScreenedBatch, PreparedBatch]]:
        pending: deque[tuple[ScreenedBatch, Future[PreparedBatch] | PreparedBatch]] = deque()
        for batch in batches:
            pending.append((batch, self._submit(batch)))
            if len(pending) > self._workers:
                yield _resolved(*pending.popleft())
        while pending:
            yield _resolved(*pending.popleft())

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _resolved(
    batch: ScreenedBatch, outcome: Future[PreparedBatch] | PreparedBatch
) -> tuple[ScreenedBatch, PreparedBatch]:
    return batch, outcome.result() if isinstance(outcome, Future) else outcome


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
    watermark only moves when the whole sync succeeded, in the same transaction, to the newest update
    time seen that is not later than ``now + CLOCK_SKEW_ALLOWANCE`` (see ``PreparedBatch.saw_update``).
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
    if result.future_updates:
        log.warning(
            "sync from %s: %d record(s) carry an update time later than now (%s) plus %s; "
            "left out of the watermark (see the source's updated_at)",
            source,
            result.future_updates,
            now.isoformat(),
            CLOCK_SKEW_ALLOWANCE,
        )
    if result.latest_update is not None:
        set_watermark(session, source=source, watermark=result.latest_update, now=now, reset=full)
    return result
