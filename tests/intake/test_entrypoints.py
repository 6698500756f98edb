"""The Celery task, the CLI and the demo hook, each against its own migrated SQLite file (they commit)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from intake_helpers import NOW
from sqlalchemy import func, select
from typer.testing import CliRunner

import celeryconfig
from callcenter.cli.main import app as cli_app
from callcenter.core.clock import ManualClock
from callcenter.core.db import session_scope, upgrade_database
from callcenter.core.runtime import Runtime, build_runtime
from callcenter.core.settings import Settings, get_settings
from callcenter.intake import tasks
from callcenter.intake.demo import run_demo_intake
from callcenter.intake.mapping import MappingConfig
from callcenter.intake.models import Dossier, ImportRun, QuarantinedRecord, SyncState
from callcenter.intake.simulator import OneStopStore, SimulatorServer, create_simulator_app
from callcenter.intake.synthetic import make_raw_dossiers, write_csv

TOKEN = "task-token"


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("intake-template") / "template.db"
    upgrade_database(f"sqlite:///{path}")
    return path


@pytest.fixture
def runtime(template_db: Path, tmp_path: Path, redis_url: str) -> Iterator[Runtime]:
    path = tmp_path / "callcenter.db"
    shutil.copy(template_db, path)
    settings = Settings(env="test", database_url=f"sqlite:///{path}", redis_url=redis_url)
    built = build_runtime(settings, clock=ManualClock(NOW))
    yield built
    built.engine.dispose()


def _count(runtime: Runtime, model: type) -> int:
    with session_scope(runtime.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_sync_task_commits_moves_the_watermark_and_is_idempotent(
    runtime: Runtime, mapping: MappingConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = OneStopStore(make_raw_dossiers(60, seed=9, now=NOW), mapping=mapping)
    source = f"onestop-{uuid.uuid4().hex[:6]}"
    with SimulatorServer(create_simulator_app(store, token=TOKEN)) as server:
        monkeypatch.setenv("CALLCENTER_INTAKE_API_BASE_URL", server.url)
        monkeypatch.setenv("CALLCENTER_INTAKE_API_TOKEN", TOKEN)
        monkeypatch.setattr(tasks, "_RUNTIME", runtime)
        first = tasks.sync_api_task.apply(kwargs={"source": source}).get()
        second = tasks.sync_api_task.apply(kwargs={"source": source}).get()
    assert first["inserted"] == 60 and first["source"] == source
    assert (second["inserted"], second["updated"]) == (0, 0)
    assert _count(runtime, Dossier) == 60
    assert _count(runtime, SyncState) == 1
    assert _count(runtime, ImportRun) == 2


def test_sync_task_skips_while_another_sync_holds_the_lock(
    runtime: Runtime, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = f"onestop-{uuid.uuid4().hex[:6]}"
    monkeypatch.setattr(tasks, "_RUNTIME", runtime)
    lock = redis.Redis.from_url(redis_url).lock(f"callcenter:intake:sync:{source}", timeout=30)
    assert lock.acquire(blocking=False)
    try:
        result = tasks.sync_api_task.apply(kwargs={"source": source}).get()
    finally:
        lock.release()
    assert result == {"source": source, "skipped": True}
    assert _count(runtime, ImportRun) == 0


def test_sync_task_reports_a_refused_token_without_retrying(
    runtime: Runtime, mapping: MappingConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = OneStopStore(make_raw_dossiers(3, seed=9, now=NOW), mapping=mapping)
    with SimulatorServer(create_simulator_app(store, token=TOKEN)) as server:
        monkeypatch.setenv("CALLCENTER_INTAKE_API_BASE_URL", server.url)
        monkeypatch.setenv("CALLCENTER_INTAKE_API_TOKEN", "stale-token")
        monkeypatch.setattr(tasks, "_RUNTIME", runtime)
        result = tasks.sync_api_task.apply(kwargs={"source": "onestop"}).get()
    assert "HTTP 401" in str(result["error"])
    assert _count(runtime, Dossier) == 0


def test_celery_beat_schedules_the_sync() -> None:
    entry = celeryconfig.beat_schedule["intake-sync-api"]
    assert entry["task"] == "intake.sync_api"
    assert tasks.sync_api_task.name in tasks.app.tasks


@pytest.fixture
def cli_env(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CALLCENTER_DATABASE_URL", runtime.settings.database_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_cli_file_import_twice_and_quarantine_listing(
    cli_env: None, runtime: Runtime, mapping: MappingConfig, tmp_path: Path
) -> None:
    path = tmp_path / "Ho_so_da_tra.csv"
    raws = list(make_raw_dossiers(300, seed=4, now=NOW, bad_share=0.05))
    write_csv(path, raws, mapping=mapping, delimiter=";", bom=True)
    runner = CliRunner()
    first = runner.invoke(cli_app, ["intake", "file", str(path), "--source", "file:stp"])
    assert first.exit_code == 0, first.output
    assert "inserted" in first.output and "quarantined" in first.output
    inserted = _count(runtime, Dossier)
    quarantined = _count(runtime, QuarantinedRecord)
    assert inserted + quarantined == 300 and quarantined > 0
    second = runner.invoke(cli_app, ["intake", "file", str(path), "--source", "file:stp"])
    assert second.exit_code == 0, second.output
    assert f"{inserted:,}" in second.output  # all of them now 'unchanged'
    assert _count(runtime, Dossier) == inserted

    listing = runner.invoke(
        cli_app, ["intake", "quarantine", "--limit", "500", "--run", "1"], env={"COLUMNS": "250"}
    )
    assert listing.exit_code == 0, listing.output
    assert f"({quarantined} shown)" in listing.output
    # No personal data in the listing: no submitter's name, phone or ID number.
    squeezed = "".join(listing.output.split())
    for raw in raws:
        digits = "".join(ch for ch in raw["phone"] if ch.isdigit())
        assert not raw["submitter_name"] or raw["submitter_name"].replace(" ", "") not in squeezed
        assert len(digits) < 7 or digits[-7:] not in squeezed
        assert not raw["national_id"] or raw["national_id"] not in squeezed


def test_cli_refuses_a_bad_file_clearly_and_records_the_attempt(
    cli_env: None, runtime: Runtime, tmp_path: Path
) -> None:
    path = tmp_path / "ansi.csv"
    path.write_bytes("Mã hồ sơ;Họ và tên người nộp\nHS-1;Lê Văn Đông\n".encode("cp1258", errors="replace"))
    result = CliRunner().invoke(cli_app, ["intake", "file", str(path)], env={"COLUMNS": "250"})
    assert result.exit_code == 1
    assert "not UTF-8" in result.output and "Traceback" not in result.output
    with session_scope(runtime.sessions) as session:
        run = session.scalars(select(ImportRun)).one()
        assert run.error is not None and "not UTF-8" in run.error


def test_demo_intake_syncs_from_the_in_process_simulator(runtime: Runtime) -> None:
    result = run_demo_intake(runtime, 150, 7)
    assert result.counts.inserted + result.counts.quarantined == 150
    assert result.counts.inserted > 140
    again = run_demo_intake(runtime, 150, 7)
    assert again.counts.inserted == 0 and again.counts.updated == 0
    assert _count(runtime, Dossier) == result.counts.inserted
