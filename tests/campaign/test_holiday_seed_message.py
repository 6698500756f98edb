"""``callcenter campaign holidays seed`` says when a year already had its holidays (on a SQLite file)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from callcenter.campaign.calendar_store import ensure_years_seeded
from callcenter.campaign.holidays import vietnamese_holidays
from callcenter.cli.main import app
from callcenter.core.db import make_engine, upgrade_database
from callcenter.core.settings import get_settings


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'holidays.db'}"
    upgrade_database(url)
    monkeypatch.setenv("CALLCENTER_DATABASE_URL", url)
    monkeypatch.setenv("CALLCENTER_ENV", "test")
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def _seed(*years: str) -> str:
    result = CliRunner().invoke(app, ["campaign", "holidays", "seed", *years])
    assert result.exit_code == 0, result.output
    return result.output


def test_seeding_a_year_campaign_create_already_seeded_says_so(db_url: str) -> None:
    # What `campaign create` does for the years its campaign spans.
    engine = make_engine(db_url)
    with Session(engine) as session:
        ensure_years_seeded(session, years=[2027])
        session.commit()
    engine.dispose()

    output = _seed("2027")
    assert output.strip() == "Năm 2027 đã có đủ lịch nghỉ lễ; không thêm ngày nào."
    assert "Đã thêm 0" not in output


def test_seeding_names_each_year_and_what_it_added(db_url: str) -> None:
    first = _seed("2027")
    assert first.strip() == f"Năm 2027: đã thêm {len(vietnamese_holidays(2027))} ngày nghỉ lễ."
    removed = CliRunner().invoke(app, ["campaign", "holidays", "remove", "2027-09-03"])
    assert removed.exit_code == 0, removed.output
    # A year given twice is reported once; a missing day is put back and counted.
    lines = _seed("2028", "2027", "2028").strip().splitlines()
    assert lines == [
        f"Năm 2028: đã thêm {len(vietnamese_holidays(2028))} ngày nghỉ lễ.",
        "Năm 2027: đã thêm 1 ngày nghỉ lễ.",
    ]
    assert _seed("2027", "2028").strip().splitlines() == [
        "Năm 2027 đã có đủ lịch nghỉ lễ; không thêm ngày nào.",
        "Năm 2028 đã có đủ lịch nghỉ lễ; không thêm ngày nào.",
    ]
