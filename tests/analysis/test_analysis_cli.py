"""The analysis command line against a committed SQLite database: keys, imports, staff phones, phúc tra."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from callcenter.analysis import cli
from callcenter.api.auth import hash_key
from callcenter.core.db import make_engine, make_session_factory, upgrade_database
from callcenter.core.models import ApiKey, AuditLog
from callcenter.core.pii import PiiCipher
from callcenter.core.runtime import Runtime
from callcenter.core.settings import Settings
from callcenter.ivr.models import SurveyResponse

from .conftest import Builder


@pytest.fixture
def runtime(tmp_path: Path, cipher: PiiCipher, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    url = f"sqlite:///{tmp_path / 'cc.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with factory() as session:
        build = Builder(session, cipher)
        a = build.agency("XD", "Sở Xây dựng")
        f = build.field("DD", "Đất đai")
        for day in range(1, 13):
            d = build.dossier(a, f, returned_at=datetime(2026, 3, day, tzinfo=UTC))
            build.called_response(
                d, a, f, at=datetime(2026, 3, day + 1, 3, tzinfo=UTC), satisfied=day % 4 != 0
            )
        session.commit()
    rt = Runtime(
        settings=Settings(env="test", database_url=url), engine=engine, sessions=factory, cipher=cipher
    )
    monkeypatch.setattr(cli, "_runtime", lambda: rt)
    yield rt
    engine.dispose()


def test_apikey_issue(runtime: Runtime) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli.app, ["apikey", "issue", "--role", "agency", "--agency", "XD", "--name", "Sở XD"]
    )
    assert result.exit_code == 0, result.output
    raw = result.output.strip().splitlines()[-1]
    with runtime.sessions() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(raw)))
        assert row is not None and row.role == "agency" and row.agency_id is not None
    missing = runner.invoke(cli.app, ["apikey", "issue", "--role", "agency", "--name", "x"])
    assert missing.exit_code == 2 and "--agency" in missing.output
    wrong = runner.invoke(
        cli.app, ["apikey", "issue", "--role", "home_affairs", "--agency", "XD", "--name", "x"]
    )
    assert wrong.exit_code == 2
    unknown = runner.invoke(
        cli.app, ["apikey", "issue", "--role", "agency", "--agency", "NOPE", "--name", "x"]
    )
    assert unknown.exit_code == 2 and "NOPE" in unknown.output


def test_import_results_reports_rows_and_writes_nothing_on_error(runtime: Runtime, tmp_path: Path) -> None:
    bad = tmp_path / "web.csv"
    bad.write_text(
        "Mã phiếu,Mã cơ quan,Thời gian đánh giá,Mức độ hài lòng\n"
        "W1,XD,01/03/2026,Hài lòng\nW2,XX,01/03/2026,?\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    result = runner.invoke(cli.app, ["import-results", str(bad), "--channel", "web"])
    assert result.exit_code == 2
    assert "row 3, field 'Mã cơ quan'" in result.output and "row 3, field 'Mức độ hài lòng'" in result.output
    with runtime.sessions() as session:
        assert session.scalar(select(SurveyResponse).where(SurveyResponse.channel == "web")) is None
    bad.write_text(
        "Mã phiếu,Mã cơ quan,Thời gian đánh giá,Mức độ hài lòng\nW1,XD,01/03/2026,Hài lòng\n",
        encoding="utf-8",
    )
    ok = runner.invoke(cli.app, ["import-results", str(bad), "--channel", "web"])
    assert ok.exit_code == 0 and "nhập mới 1" in ok.output


def test_staff_phones_and_reverification(runtime: Runtime, tmp_path: Path) -> None:
    staff = tmp_path / "staff.csv"
    staff.write_text("Số điện thoại\n0905777888\n", encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(cli.app, ["staff-phones", "import", str(staff), "--agency", "XD"]).exit_code == 0
    drawn = runner.invoke(
        cli.app, ["reverify", "draw", "--agency", "XD", "--period", "2026-03", "--actor", "kt"]
    )
    assert drawn.exit_code == 0 and "10 of 12 answers" in drawn.output
    sample_id = drawn.output.split()[1].rstrip(":")
    out = tmp_path / "phuc-tra.csv"
    export = runner.invoke(
        cli.app, ["reverify", "export", "--sample", sample_id, "--actor", "kt", "--out", str(out)]
    )
    assert export.exit_code == 0, export.output
    assert len(out.read_text(encoding="utf-8-sig").strip().splitlines()) == 11
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    with runtime.sessions() as session:
        audit = session.scalar(select(AuditLog).where(AuditLog.action == "reverification.export"))
        assert audit is not None and audit.actor == "cli:kt"
    assert runner.invoke(cli.app, ["detect-anomalies", "--period", "2026-03"]).exit_code == 0
