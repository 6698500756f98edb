"""``callcenter campaign …`` end to end on a migrated SQLite file, as an operator would use it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from callcenter.campaign.models import Campaign, CampaignEvent
from callcenter.core.db import make_engine, upgrade_database
from callcenter.core.pii import PiiCipher
from callcenter.core.settings import get_settings
from callcenter.intake.models import Agency, Field
from tests.campaign.conftest import World
from tests.cli_helpers import WIDE_RUNNER


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cipher: PiiCipher) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    with Session(engine) as session:
        agencies = {"SO-TP": Agency(code="SO-TP", name="Sở Tư pháp", organisations_only=False)}
        field = Field(code="HO-TICH", name="Hộ tịch")
        session.add_all([*agencies.values(), field])
        session.flush()
        World(session, cipher, agencies, field).add_dossiers("SO-TP", 50, late_every=4)
        session.commit()
    engine.dispose()
    monkeypatch.setenv("CALLCENTER_DATABASE_URL", url)
    monkeypatch.setenv("CALLCENTER_ENV", "test")
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_operator_workflow(cli_db: str, tmp_path: Path) -> None:
    from callcenter.cli.main import app

    runner = CliRunner()
    rules = tmp_path / "rules.yaml"
    rules.write_text("caps:\n  max_attempts_per_phone_per_day: 1\n", encoding="utf-8")
    created = runner.invoke(
        app,
        [
            "campaign",
            "create",
            "--name",
            "Thử nghiệm",
            "--from",
            "2026-10-01",
            "--to",
            "2026-10-31",
            "--starts",
            "2030-01-07T08:00",
            "--ends",
            "2030-02-28T17:00",
            "--agency",
            "SO-TP",
            "--rules",
            str(rules),
            "--seed",
            "5",
            "--actor",
            "lan",
        ],
    )
    assert created.exit_code == 0, created.output
    assert "#1" in created.output and "seed 5" in created.output
    assert runner.invoke(app, ["campaign", "start", "1", "--actor", "lan"]).exit_code == 0
    refused = runner.invoke(app, ["campaign", "resume", "1"])
    assert refused.exit_code == 1 and "scheduled" in refused.output
    status = runner.invoke(app, ["campaign", "status", "1"], env={"COLUMNS": "250"})
    assert status.exit_code == 0, status.output
    assert "SO-TP" in status.output and "— đã lên lịch;" in status.output
    # For the operator: the agency's name, the calling hours and the statuses in Vietnamese.
    assert "Sở Tư pháp (SO-TP)" in status.output
    assert "Giờ gọi: Thứ Hai–Thứ Sáu 08:00–11:30; Thứ Hai–Thứ Sáu 13:30–17:00" in status.output
    assert runner.invoke(app, ["campaign", "stop", "1", "--note", "thử xong"]).exit_code == 0
    listed = runner.invoke(app, ["campaign", "list"], env={"COLUMNS": "200"})
    assert "cancelled" in listed.output
    engine = make_engine(cli_db)
    with Session(engine) as session:
        events = session.scalars(select(CampaignEvent).order_by(CampaignEvent.id)).all()
        assert [(e.to_status, e.actor) for e in events][:2] == [("draft", "lan"), ("scheduled", "lan")]
        assert events[-1].note == "thử xong"
    engine.dispose()


def test_bad_input_exits_2_naming_the_field(cli_db: str) -> None:
    from callcenter.cli.main import app

    result = CliRunner().invoke(
        app,
        [
            "campaign",
            "create",
            "--name",
            "x",
            "--from",
            "2026-10-01",
            "--to",
            "2026-10-31",
            "--starts",
            "2030-01-07T08:00",
            "--ends",
            "2030-01-01T08:00",
            "--agency",
            "SO-TP",
        ],
    )
    assert result.exit_code == 2
    assert "ends_at" in result.output
    unknown = CliRunner().invoke(
        app,
        [
            "campaign",
            "create",
            "--name",
            "x",
            "--from",
            "2026-10-01",
            "--to",
            "2026-10-31",
            "--starts",
            "2030-01-07T08:00",
            "--ends",
            "2030-02-01T08:00",
            "--agency",
            "NOPE",
            "--params",
            "{bad",
        ],
    )
    assert unknown.exit_code == 2 and "params" in unknown.output


def test_tick_task_starts_due_campaigns(cli_db: str) -> None:
    from callcenter.campaign import tasks
    from callcenter.cli.main import app

    runner = CliRunner()
    args = [
        "campaign",
        "create",
        "--name",
        "x",
        "--from",
        "2026-10-01",
        "--to",
        "2026-10-31",
        "--starts",
        "2020-01-06T08:00",
        "--ends",
        "2030-01-01T08:00",
        "--agency",
        "SO-TP",
    ]
    assert runner.invoke(app, args).exit_code == 0
    engine = make_engine(cli_db)
    with Session(engine) as session:
        session.add(
            CampaignEvent(
                campaign_id=1, from_status="draft", to_status="scheduled", actor="t", at=datetime.now(UTC)
            )
        )
        session.execute(update(Campaign).values(status="scheduled"))
        session.commit()
    tasks._runtime.cache_clear()
    assert tasks.tick() == {"started": 1, "completed": 0}
    assert tasks.tick() == {"started": 0, "completed": 0}  # idempotent
    with Session(engine) as session:
        assert session.scalar(select(Campaign.status)) == "running"
    engine.dispose()
    tasks._runtime.cache_clear()


def test_holidays_and_optout_commands_in_a_real_process(cli_db: str, tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    exe = [sys.executable, "-m", "callcenter"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*exe, *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )

    seeded = run("campaign", "holidays", "seed", "2027")
    assert seeded.returncode == 0, seeded.stderr
    listed = run("campaign", "holidays", "list", "--year", "2027")
    assert "06/02/2027" in listed.stdout and "Tết Nguyên đán" in listed.stdout  # mùng 1 Tết 2027
    assert run("campaign", "holidays", "remove", "2027-09-03").returncode == 0
    assert run("campaign", "holidays", "remove", "2027-09-03").returncode == 1  # not there any more
    csv_file = tmp_path / "dnc.csv"
    csv_file.write_text("phone\n0905123456\n09x\n", encoding="utf-8")
    imported = run("campaign", "optout", "import", str(csv_file))
    assert imported.returncode == 0, imported.stderr
    assert "1 số mới" in imported.stdout and "row 3:" in imported.stdout


def test_optout_import_that_takes_nothing_exits_non_zero(cli_db: str, tmp_path: Path) -> None:
    from callcenter.cli.main import app

    runner = CliRunner()
    csv_file = tmp_path / "dnc.csv"
    csv_file.write_text("Họ tên,Ghi chú\nNguyễn Văn An,không muốn nhận cuộc gọi\n", encoding="utf-8")
    no_column = runner.invoke(app, ["campaign", "optout", "import", str(csv_file)])
    assert no_column.exit_code == 2, no_column.output
    assert "no phone column" in no_column.output and "no phone number was imported" in no_column.output
    csv_file.write_text("sdt\n123\nabc\n", encoding="utf-8")
    all_bad = runner.invoke(app, ["campaign", "optout", "import", str(csv_file)])
    assert all_bad.exit_code == 2 and "row 2:" in all_bad.output and "row 3:" in all_bad.output
    # "Điện thoại" and "Số ĐT" are phone columns, as in the staff-phone import.
    for header, outcome in (("Điện thoại", "1 số mới, 0 đã có"), ("Số ĐT", "0 số mới, 1 đã có")):
        csv_file.write_text(f"Họ tên,{header}\nNguyễn Văn An,0905 123 456\n", encoding="utf-8")
        ok = runner.invoke(app, ["campaign", "optout", "import", str(csv_file)])
        assert ok.exit_code == 0, ok.output
        assert outcome in ok.output
    # Excel's ";" CSV with several columns is read like a "," one.
    csv_file.write_text("STT;Số điện thoại;Ghi chú\n1;0905 777 888;chồng nghe máy\n", encoding="utf-8-sig")
    semicolon = runner.invoke(app, ["campaign", "optout", "import", str(csv_file)])
    assert semicolon.exit_code == 0 and "1 số mới" in semicolon.output, semicolon.output
    # Nothing to take is a failure too: an empty file, a header alone.
    for text in ("", "Số điện thoại\n"):
        csv_file.write_text(text, encoding="utf-8")
        empty = runner.invoke(app, ["campaign", "optout", "import", str(csv_file)])
        assert empty.exit_code == 2 and "no phone number in the file" in empty.output, empty.output
    # A workbook or a Windows-1258 file: advice, not a codec error.
    workbook = tmp_path / "dnc.xlsx"
    workbook.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    xlsx = runner.invoke(app, ["campaign", "optout", "import", str(workbook)])
    assert xlsx.exit_code != 0 and "an Excel workbook, not a CSV file" in xlsx.output, xlsx.output
    csv_file.write_bytes("SĐT\n0905123456\n".encode("cp1258"))
    legacy = runner.invoke(app, ["campaign", "optout", "import", str(csv_file)])
    assert legacy.exit_code != 0 and "Windows-1258" in legacy.output and "codec" not in legacy.output


def test_a_rules_file_not_in_utf8_is_named(cli_db: str, tmp_path: Path) -> None:
    from callcenter.cli.main import app

    rules = tmp_path / "quy-tac.yaml"
    rules.write_bytes(b"caps:\n  max_attempts_per_phone_per_day: 1\n# Quy t\xe3c\n")  # Windows-1258
    result = WIDE_RUNNER.invoke(
        app,
        ["campaign", "create", "--name", "X", "--from", "2026-10-01", "--to", "2026-10-31",
         "--starts", "2030-01-07T08:00", "--ends", "2030-02-28T17:00", "--rules", str(rules)],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "quy-tac.yaml is not UTF-8 text" in result.output and "Traceback" not in result.output


def test_every_status_and_outcome_has_its_vietnamese_label() -> None:
    from callcenter.campaign.models import CAMPAIGN_STATUS_LABELS_VI, CampaignStatus
    from callcenter.core.outcomes import CALL_OUTCOME_LABELS_VI, CallOutcome

    assert set(CAMPAIGN_STATUS_LABELS_VI) == set(CampaignStatus)
    assert set(CALL_OUTCOME_LABELS_VI) == set(CallOutcome)
    assert len(set(CALL_OUTCOME_LABELS_VI.values())) == len(CallOutcome)  # no two read alike
