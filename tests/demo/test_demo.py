"""The README's first command, `callcenter demo`, run for real as a process on a small data set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import func, select

from callcenter.campaign.models import CallTarget, TargetState
from callcenter.core.db import make_engine, make_session_factory, session_scope
from callcenter.dialer.models import AttemptStatus, CallAttempt
from callcenter.ivr.models import ResponseStatus, SurveyResponse

pytestmark = pytest.mark.slow


def test_demo_runs_the_whole_survey_with_an_in_process_redis(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    out = tmp_path / "reports"
    env = {
        **os.environ,
        "CALLCENTER_DATABASE_URL": f"sqlite:///{db}",
        # Nothing listens on port 1: the demo must fall back to its in-process Redis and say so.
        "CALLCENTER_REDIS_URL": "redis://127.0.0.1:1/0",
        "COLUMNS": "160",
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "callcenter",
            "demo",
            "--dossiers",
            "900",
            "--agencies",
            "3",
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Redis trong tiến trình (fakeredis)" in proc.stdout
    assert "Task was destroyed" not in proc.stderr

    html = next(out.glob("bao-cao-thanh-pho-*.html"))
    xlsx = next(out.glob("bao-cao-thanh-pho-*.xlsx"))
    text = html.read_text(encoding="utf-8")
    assert "<svg" in text
    workbook = openpyxl.load_workbook(xlsx, read_only=True)
    assert len(workbook.sheetnames) >= 2

    sessions = make_session_factory(make_engine(f"sqlite:///{db}"))
    with session_scope(sessions) as session:
        states: dict[str, int] = {
            state: count
            for state, count in session.execute(
                select(CallTarget.state, func.count()).group_by(CallTarget.state)
            ).all()
        }
        open_attempts = session.scalar(
            select(func.count()).where(
                CallAttempt.status.not_in([AttemptStatus.FINISHED.value, AttemptStatus.CANCELLED.value])
            )
        )
        completed_calls = session.scalar(
            select(func.count()).where(
                SurveyResponse.channel == "call", SurveyResponse.status == ResponseStatus.COMPLETED.value
            )
        )
        dossiers_surveyed_twice = session.execute(
            select(SurveyResponse.dossier_id, func.count())
            .where(SurveyResponse.status == ResponseStatus.COMPLETED.value)
            .group_by(SurveyResponse.dossier_id)
            .having(func.count() > 1)
        ).all()
    assert TargetState.QUEUED.value not in states and TargetState.IN_CALL.value not in states
    assert states.get(TargetState.COMPLETED.value, 0) > 0
    assert open_attempts == 0
    # Every completed target is backed by exactly one completed call response, and vice versa.
    assert completed_calls == states[TargetState.COMPLETED.value]
    assert dossiers_surveyed_twice == []
