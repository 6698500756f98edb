"""``callcenter intake``: pull dossiers from the one-stop API or an export file; list the quarantine."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlalchemy import select

from callcenter.analysis.dossier_copies import refresh_dossier_copies
from callcenter.core.clock import to_local
from callcenter.core.db import DB_INT_MAX, column_length, session_scope
from callcenter.core.pii import mask_digit_runs
from callcenter.core.runtime import Runtime, build_runtime
from callcenter.intake.adapters.files import open_file_source
from callcenter.intake.errors import IntakeError
from callcenter.intake.importer import ImportResult, run_import
from callcenter.intake.mapping import load_mapping
from callcenter.intake.models import Dossier, ImportRun, QuarantinedRecord
from callcenter.intake.service import ImportCounts, finish_import_run, start_import_run
from callcenter.intake.settings import IntakeSettings
from callcenter.intake.sync import run_api_sync

app = typer.Typer(help="Dossier intake from the one-stop system (API or export files).", no_args_is_help=True)
console = Console()


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
    )


def _counts_table(result: ImportResult, seconds: float) -> Table:
    counts = result.counts
    table = Table(title=f"Kết quả nhập hồ sơ (import run {result.run.id}, {result.run.source})")
    for header in (
        "Thêm mới\ninserted",
        "Cập nhật\nupdated",
        "Không đổi\nunchanged",
        "Cách ly\nquarantined",
        "Tổng\nrows",
        "Giây\nseconds",
    ):
        table.add_column(header, justify="right")
    table.add_row(
        f"{counts.inserted:,}",
        f"{counts.updated:,}",
        f"{counts.unchanged:,}",
        f"[red]{counts.quarantined:,}[/red]" if counts.quarantined else "0",
        f"{counts.total:,}",
        f"{seconds:.1f}",
    )
    return table


def _record_failure(runtime: Runtime, *, source: str, kind: str, location: str, error: str) -> None:
    # The failed import's own transaction was rolled back; keep a trace of the attempt anyway.
    with session_scope(runtime.sessions) as session:
        now = runtime.clock.now()
        run = start_import_run(session, source=source, kind=kind, location=location, now=now)
        finish_import_run(session, run=run, counts=ImportCounts(), now=now, error=error)


# --source is written to every one of these columns; the shortest bounds it.
_SOURCE_COLUMNS = (ImportRun.source, Dossier.source, QuarantinedRecord.source)
MAX_SOURCE = min(column_length(column) for column in _SOURCE_COLUMNS)


def _check_source(value: str | None) -> str | None:
    """Refuse a --source the database cannot store, before anything is read or written."""
    if value is None:
        return None
    if not value.strip():
        raise typer.BadParameter("must not be empty (omit it for CALLCENTER_INTAKE_SOURCE)")
    if len(value) > MAX_SOURCE:
        raise typer.BadParameter(
            f"{len(value)} characters is too long; a source name has at most {MAX_SOURCE}"
        )
    return value


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]Lỗi / error:[/red] {mask_digit_runs(message)}")
    return typer.Exit(code=1)


@app.command("api")
def intake_api(
    full: bool = typer.Option(False, "--full", help="Ignore the watermark and read every record."),
) -> None:
    """Sync dossiers updated since the last sync from the one-stop system's REST API."""
    runtime = build_runtime()
    settings = IntakeSettings()
    started = time.monotonic()
    with _progress() as progress:
        task = progress.add_task("Đang đồng bộ / syncing", total=None, rate="")

        def advance(rows: int) -> None:
            progress.advance(task, rows)

        try:
            result = run_api_sync(runtime, settings=settings, full=full, progress=advance)
        except IntakeError as exc:
            _record_failure(
                runtime, source=settings.source, kind="api", location=settings.api_base_url, error=str(exc)
            )
            raise _fail(str(exc)) from exc
    console.print(_counts_table(result, time.monotonic() - started))


@app.command("file")
def intake_file(
    path: Path = typer.Argument(
        ..., help="A CSV (UTF-8, ';' or ',') or XLSX export.", exists=True, dir_okay=False
    ),
    source: str | None = typer.Option(
        None,
        "--source",
        help=(
            "Source name (default: CALLCENTER_INTAKE_SOURCE), at most "
            f"{MAX_SOURCE} characters. Same code + source = same dossier."
        ),
        callback=_check_source,
    ),
    workers: int = typer.Option(
        0, "--workers", min=0, max=8, help="Worker processes preparing rows (for files of 100,000+ rows)."
    ),
) -> None:
    """Import an export file; bad rows are quarantined, the rest imported."""
    runtime = build_runtime()
    settings = IntakeSettings()
    source_name = source or settings.source
    started = time.monotonic()
    try:
        mapping = load_mapping(settings.mapping_path)
        connector = open_file_source(path, mapping=mapping)
        size = path.stat().st_size
        with _progress() as progress, session_scope(runtime.sessions) as session:
            task = progress.add_task(f"Đang nhập / importing {path.name}", total=None, rate="")

            def advance(rows: int) -> None:
                progress.advance(task, rows)
                elapsed = time.monotonic() - started
                done = progress.tasks[0].completed
                progress.update(task, rate=f"{done / elapsed:,.0f} rows/s" if elapsed else "")

            now = runtime.clock.now()
            result = run_import(
                session,
                connector=connector,
                source=source_name,
                mapping=mapping,
                cipher=runtime.cipher,
                now=now,
                batch_size=settings.batch_size,
                workers=workers,
                worker_keys=(
                    runtime.settings.pii_key_bytes,
                    runtime.settings.phone_hash_key.get_secret_value().encode(),
                ),
                progress=advance,
            )
            # Same transaction: the calls and answers of corrected dossiers follow them.
            refresh_dossier_copies(session, changed_since=now)
    except IntakeError as exc:
        _record_failure(runtime, source=source_name, kind="file", location=str(path), error=str(exc))
        raise _fail(str(exc)) from exc
    console.print(f"{path.name}: {size / 1e6:.1f} MB")
    console.print(_counts_table(result, time.monotonic() - started))
    if result.counts.quarantined:
        console.print(
            "Xem các dòng bị cách ly / see quarantined rows: "
            f"callcenter intake quarantine --run {result.run.id}"
        )


@app.command("quarantine")
def intake_quarantine(
    run: int | None = typer.Option(None, "--run", min=1, max=DB_INT_MAX, help="Only this import run."),
    source: str | None = typer.Option(None, "--source", help="Only this source."),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000),
) -> None:
    """List quarantined rows: where they came from and why (never their personal data)."""
    runtime = build_runtime()
    with session_scope(runtime.sessions) as session:
        query = select(QuarantinedRecord).order_by(QuarantinedRecord.id.desc()).limit(limit)
        if run is not None:
            query = query.where(QuarantinedRecord.import_run_id == run)
        if source is not None:
            query = query.where(QuarantinedRecord.source == source)
        rows = session.scalars(query).all()
        table = Table(title=f"Dòng bị cách ly / quarantined rows ({len(rows)} shown)")
        for header in ("id", "run", "source", "row / record", "field", "reason", "at (local)"):
            table.add_column(header)
        for row in rows:
            table.add_row(
                str(row.id),
                str(row.import_run_id or ""),
                row.source,
                mask_digit_runs(row.row_ref),
                row.field or "",
                mask_digit_runs(row.reason),
                f"{to_local(row.created_at):%d/%m/%Y %H:%M}",
            )
    console.print(table)
