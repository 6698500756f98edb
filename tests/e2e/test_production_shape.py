"""The production shape on one machine, from intake to report, checked against what the citizens did.

Real PostgreSQL (a fresh migrated database), a private redis-server, and real processes: the Celery
worker and beat, the trunk owner (``callcenter ami-owner``) on the ``asterisk`` trunk, and the FastAGI
server (``callcenter agi-server``). The test process plays the PBX and the phone network
(:mod:`tests.e2e.fake_pbx`): recorded AMI events for every Originate, and for answered calls a FastAGI
session to the agi-server in which a citizen scripted by phone number answers the real Vietnamese
questionnaire. Dossiers come from the one-stop simulator through the real intake; the campaign is
sampled and started by the campaign service; the report is built and rendered by the analysis package.

Busy lines are tried again after the shortest retry delay the rules allow (one minute), so the test
sees two dialling waves and takes about 75 s; every other outcome ends its target at the first try.
"""

from __future__ import annotations

import io
import itertools
import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from openpyxl import load_workbook
from sqlalchemy import func
from sqlalchemy import select as sql_select

from callcenter.analysis import report as report_module
from callcenter.analysis.labels import reason_labels
from callcenter.analysis.periods import Period, PeriodKind
from callcenter.campaign import service as campaign_service
from callcenter.campaign.models import CallTarget, TargetState
from callcenter.campaign.retry import RetryKey
from callcenter.campaign.schemas import parse_spec
from callcenter.core.clock import VN_TZ, SystemClock
from callcenter.core.db import session_scope, upgrade_database
from callcenter.core.models import OptOut
from callcenter.core.phones import national_format
from callcenter.core.runtime import Runtime, build_runtime
from callcenter.core.settings import Settings
from callcenter.dialer.models import AttemptStatus, CallAttempt
from callcenter.dialer.testing import PG_ADMIN_DSN, REPO, PrivateRedis, Processes, dialer_env
from callcenter.intake.demo import run_demo_intake
from callcenter.intake.models import Agency, Dossier
from callcenter.ivr.call_token import call_token, call_token_key
from callcenter.ivr.models import SurveyResponse
from tests.dialer.ami_server import ThreadedFakeAmi
from tests.e2e.fake_pbx import ANSWERED, EXPECTED, Behaviour, Citizens, FakePbx, behaviour_for

pytestmark = pytest.mark.slow

DOSSIERS = 240
AGENCIES = 5
RETRY_RULES = {key.value: {"delay_minutes": 1, "max_attempts": 1} for key in RetryKey} | {
    RetryKey.BUSY.value: {"delay_minutes": 1, "max_attempts": 2}
}
ALL_DAY = [{"weekdays": [0, 1, 2, 3, 4, 5, 6], "start": "00:00", "end": "23:59:59"}]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def e2e_pg_url() -> Iterator[str]:
    """A fresh migrated database of this test's own: the session's ``pg_url`` holds other tests' commits,
    and the report covers the whole city."""
    name = f"cc_e2e_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        upgrade_database(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def runtime(e2e_pg_url: str) -> Iterator[Runtime]:
    runtime = build_runtime(Settings(env="test", database_url=e2e_pg_url), clock=SystemClock())
    try:
        yield runtime
    finally:
        runtime.engine.dispose()


@pytest.fixture
def pbx(shared_dir: Path) -> Iterator[tuple[FakePbx, int]]:
    citizens = Citizens(shared_dir / "fixtures" / "asterisk")
    fake = FakePbx({}, login=citizens.login, time_scale=0.03, citizens=citizens)
    server = ThreadedFakeAmi(fake)
    port = server.start()
    try:
        yield fake, port
    finally:
        server.stop()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Processes]]:
    started: list[Processes] = []

    def make(env: dict[str, str]) -> Processes:
        procs = Processes(env, tmp_path)
        started.append(procs)
        return procs

    try:
        yield make
    finally:
        for procs in started:
            procs.stop_all()


def start_agi_server(procs: Processes, log: Path) -> int:
    """``callcenter agi-server`` on a free port; returns the port it prints once listening."""
    ready = log.with_suffix(".ready")
    with ready.open("wb") as out, log.open("ab") as err:  # the child keeps its own descriptors
        proc = subprocess.Popen(
            [sys.executable, "-m", "callcenter", "agi-server", "--host", "127.0.0.1", "--port", "0",
             "--no-speech"],
            cwd=REPO, env=procs.env, stdout=out, stderr=err, start_new_session=True,
        )  # fmt: skip
    procs.procs["agi-server"] = proc  # stopped (SIGTERM, then SIGKILL) with the others
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        line = ready.read_text()
        if line.startswith("READY ") and line.endswith("\n"):
            return int(line.split()[1])
        time.sleep(0.05)
    raise AssertionError(f"agi-server did not start (exit {proc.poll()})\n{log.read_text()[-3000:]}")


def test_production_shape_from_intake_to_report(
    e2e_pg_url: str,
    runtime: Runtime,
    own_redis: PrivateRedis,
    pbx: tuple[FakePbx, int],
    processes: Callable[[dict[str, str]], Processes],
    tmp_path: Path,
) -> None:
    fake, ami_port = pbx
    settings = runtime.settings
    started = time.monotonic()

    # 1. Intake: the real connector against the one-stop simulator, into PostgreSQL.
    result = run_demo_intake(runtime, DOSSIERS, 1022, bad_share=0.0)
    assert result.counts.inserted == DOSSIERS and result.counts.quarantined == 0

    # 2. A campaign over the busiest agencies, callable at any hour, one attempt per target.
    now = runtime.clock.now()
    with session_scope(runtime.sessions) as session:
        first_returned = session.scalar(sql_select(func.min(Dossier.returned_at)))
        agency_codes = list(
            session.execute(
                sql_select(Agency.code)
                .join(Dossier, Dossier.agency_id == Agency.id)
                .where(Dossier.returned_at.is_not(None))
                .group_by(Agency.code)
                .order_by(func.count().desc(), Agency.code)
                .limit(AGENCIES)
            ).scalars()
        )
        in_scope = session.scalar(
            sql_select(func.count())
            .select_from(Dossier)
            .join(Agency, Agency.id == Dossier.agency_id)
            .where(Agency.code.in_(agency_codes), Dossier.returned_at.is_not(None))
        )
    assert first_returned is not None and in_scope
    spec = parse_spec(
        {
            "name": "Khảo sát kiểm thử đầu cuối",
            "policy": "fixed_total",
            "policy_params": {"total": in_scope},
            "returned_from": first_returned.astimezone(VN_TZ).date().isoformat(),
            "returned_to": now.astimezone(VN_TZ).date().isoformat(),
            "agencies": agency_codes,
            "starts_at": (now - timedelta(minutes=5)).isoformat(),
            "ends_at": (now + timedelta(days=2)).isoformat(),
            "calling_rules": {
                "windows": ALL_DAY,
                "skip_holidays": False,
                # Retry delays are whole minutes at the least: only a busy line is tried again
                # (one minute later), every other outcome ends its target at the first attempt.
                "retry": {"max_attempts_total": 2, "rules": RETRY_RULES},
                "caps": {"max_attempts_per_phone_per_day": 10, "cooloff_days": 0},
            },
            "seed": 7,
        }
    )
    with session_scope(runtime.sessions) as session:
        campaign = campaign_service.create_campaign(session, spec=spec, actor="e2e", now=now)
        campaign_service.start_campaign(session, campaign_id=campaign.id, actor="e2e", now=now)
        campaign_id = int(campaign.id)
    with session_scope(runtime.sessions) as session:
        targets_total = session.scalar(
            sql_select(func.count()).select_from(CallTarget).where(CallTarget.campaign_id == campaign_id)
        )
    assert targets_total and targets_total >= 30, (targets_total, in_scope)

    # 3. The production processes, the trunk pointed at the fake PBX.
    pbx_conf = {
        "name": "pbx1", "host": "127.0.0.1", "port": ami_port, "username": "dialer",
        "secret": "dialer-secret", "max_channels": 8, "dial_template": "Local/{number}@citizens",
    }  # fmt: skip
    env = dialer_env(
        database_url=e2e_pg_url,
        redis_url=own_redis.url,
        trunk="asterisk",
        asterisk_servers=json.dumps([pbx_conf]),
        max_channels="8",
        max_cps="20",
        release_interval_seconds="0.5",
        reap_interval_seconds="2",
        throttle_retry_seconds="1",
    )
    env.update(
        {
            "CALLCENTER_VAR_DIR": str(tmp_path / "var"),
            "CALLCENTER_IVR_RECORDINGS_DIR": str(tmp_path / "recordings"),
            "CALLCENTER_IVR_GTTS_TIMEOUT_SECONDS": "0.5",
            "CALLCENTER_IVR_DRAIN_SECONDS": "5",
        }
    )
    procs = processes(env)
    fake.agi_port = start_agi_server(procs, tmp_path / "agi-server.log")
    procs.owner()
    procs.start(
        "worker", sys.executable, "-m", "celery", "-A", "callcenter.celery_app", "worker",
        "-Q", "dialer,dialer_control,events", "-c", "2", "-P", "prefork", "-n", "e2e@%h",
        "--without-gossip", "--without-mingle", "--loglevel", "WARNING",
    )  # fmt: skip
    procs.beat()

    def open_targets() -> int:
        with session_scope(runtime.sessions) as session:
            return int(
                session.scalar(
                    sql_select(func.count())
                    .select_from(CallTarget)
                    .where(
                        CallTarget.campaign_id == campaign_id,
                        CallTarget.state.in_([TargetState.QUEUED.value, TargetState.IN_CALL.value]),
                    )
                )
                or 0
            )

    deadline = time.monotonic() + 180
    while open_targets() and time.monotonic() < deadline:
        time.sleep(0.5)
    left = open_targets()
    agi_server = procs.procs["agi-server"]
    procs.stop_all()
    logs = procs.logs()
    assert agi_server.returncode == 0, logs  # drained its calls and stopped cleanly on SIGTERM
    assert left == 0, f"{left} targets still open\n{logs}"
    assert "Traceback" not in logs, logs
    dial_seconds = time.monotonic() - started

    # 4. What the database says happened.
    with session_scope(runtime.sessions) as session:
        targets = session.execute(
            sql_select(CallTarget.id, CallTarget.dossier_id, CallTarget.state).where(
                CallTarget.campaign_id == campaign_id
            )
        ).all()
        attempts = session.execute(
            sql_select(
                CallAttempt.id, CallAttempt.target_id, CallAttempt.dossier_id, CallAttempt.channel_id,
                CallAttempt.status, CallAttempt.outcome, CallAttempt.survey_outcome, CallAttempt.detail,
            )
        ).all()  # fmt: skip
        phones = {
            d: national_format(runtime.cipher.decrypt(enc))
            for d, enc in session.execute(sql_select(Dossier.id, Dossier.phone_enc)).all()
        }
        hashes = dict(session.execute(sql_select(Dossier.id, Dossier.phone_hash)).all())
        responses = {
            r.attempt_id: (r.status, r.satisfied, tuple(sorted(x.reason_code for x in r.reasons)))
            for r in session.execute(sql_select(SurveyResponse)).scalars()
        }
        opted_out = set(session.execute(sql_select(OptOut.phone_hash)).scalars())

    # The PBX's log: every Originate once, one per dossier, each with the channel variables.
    originates = list(fake.originates)
    assert originates, "no call was placed"
    sent = Counter(o["channelid"] for o in originates)
    assert max(sent.values()) == 1, "an Originate was sent twice"
    by_channel = {a.channel_id: a for a in attempts}
    assert set(sent) <= set(by_channel)
    # No dossier dialled twice in one wave: only busy lines are dialled again, a minute later at the least.
    dialled_dossiers = Counter(by_channel[c].dossier_id for c in sent)
    for dossier_id, times in dialled_dossiers.items():
        expected_times = 2 if behaviour_for(phones[dossier_id]) is Behaviour.BUSY else 1
        assert times == expected_times, (behaviour_for(phones[dossier_id]), times)
        moments = sorted(fake.originated_at[c] for c in sent if by_channel[c].dossier_id == dossier_id)
        assert all(b - a >= 59 for a, b in itertools.pairwise(moments)), moments
    assert all(s.error is None and s.closed_by_server for s in fake.agi_sessions), [
        (s.behaviour, s.error) for s in fake.agi_sessions if s.error or not s.closed_by_server
    ]
    # Each AGI session ran the survey for the attempt and dossier the Originate put on its channel...
    token_key = call_token_key(Settings(env="test").pii_key_bytes)
    for agi in fake.agi_sessions:
        attempt = by_channel[agi.channel_id]
        # ... signed by the dialer (the AGI server surveys no call without its token).
        token = call_token(token_key, attempt_id=attempt.id, dossier_id=attempt.dossier_id)
        assert agi.variables == {
            "ATTEMPT_ID": str(attempt.id),
            "DOSSIER_ID": str(attempt.dossier_id),
            "CALL_TOKEN": token,
        }
        assert agi.commands[:4] == [
            "ANSWER",
            "GET VARIABLE ATTEMPT_ID",
            "GET VARIABLE DOSSIER_ID",
            "GET VARIABLE CALL_TOKEN",
        ]
        assert agi.number == phones[attempt.dossier_id]

    # Every attempt in exactly one final state; every dialled one finished with the citizen's outcome.
    assert {a.status for a in attempts} <= {AttemptStatus.FINISHED.value, AttemptStatus.CANCELLED.value}
    dialled = [by_channel[c] for c in sent]
    assert all(a.status == AttemptStatus.FINISHED.value for a in dialled), [
        (a.status, a.detail) for a in dialled
    ]
    behaviour = {a.id: behaviour_for(phones[a.dossier_id]) for a in dialled}
    outcomes = Counter(a.outcome for a in dialled)
    did = Counter(behaviour.values())
    assert outcomes["busy"] == did[Behaviour.BUSY]  # counts attempts: two per busy citizen
    assert outcomes["no_answer"] == did[Behaviour.NO_ANSWER]
    assert outcomes["answered"] == sum(did[b] for b in ANSWERED)
    assert len(fake.agi_sessions) == outcomes["answered"]
    assert sum(outcomes.values()) == len(dialled)
    assert [a.survey_outcome for a in dialled] == [EXPECTED[behaviour[a.id]].survey_outcome for a in dialled]
    # Each survey stored as the citizen answered it (the channel carried ATTEMPT_ID/DOSSIER_ID).
    for a in dialled:
        want = EXPECTED[behaviour[a.id]]
        got = responses.get(a.id)
        if behaviour[a.id] in ANSWERED:
            assert got is not None, (a.id, behaviour[a.id])
            status, satisfied, reasons = got
            assert (satisfied, reasons) == (want.satisfied, want.reasons), (behaviour[a.id], got)
            assert (status == "completed") == want.completed, (behaviour[a.id], got)
        else:
            assert got is None
    # Opt-outs: exactly the phones of the citizens who pressed 0 then 1.
    opt_out_phones = {hashes[a.dossier_id] for a in dialled if behaviour[a.id] is Behaviour.OPT_OUT}
    assert opted_out == opt_out_phones

    # Targets: each in one final state, matching what its citizen did.
    states = Counter(t.state for t in targets)
    assert set(states) <= {
        TargetState.COMPLETED.value, TargetState.EXHAUSTED.value, TargetState.OPTED_OUT.value,
    }, states  # fmt: skip
    final_by_target = {t.id: t.state for t in targets}
    for a in dialled:
        want = EXPECTED[behaviour[a.id]]
        expected_state = (
            TargetState.OPTED_OUT if want.opted_out
            else TargetState.COMPLETED if want.completed
            else TargetState.EXHAUSTED
        )  # fmt: skip
        assert final_by_target[a.target_id] == expected_state.value, (behaviour[a.id], a.outcome)
    # A target never dialled can only be one whose phone opted out before its turn.
    never_dialled = [t for t in targets if t.dossier_id not in dialled_dossiers]
    assert all(
        t.state == TargetState.OPTED_OUT.value and hashes[t.dossier_id] in opt_out_phones
        for t in never_dialled
    ), [(t.state, behaviour_for(phones[t.dossier_id])) for t in never_dialled]

    # 5. The report, and every figure in it against the script.
    completed = [a for a in dialled if EXPECTED[behaviour[a.id]].completed]
    satisfied = [a for a in completed if EXPECTED[behaviour[a.id]].satisfied]
    unsatisfied = [a for a in completed if EXPECTED[behaviour[a.id]].satisfied is False]
    reasons = Counter(code for a in unsatisfied for code in EXPECTED[behaviour[a.id]].reasons)
    reached = [a for a in dialled if behaviour[a.id] in ANSWERED]
    labels = reason_labels(settings.prompts_dir / "questionnaire.vi.yaml")
    with session_scope(runtime.sessions) as session:
        data = report_module.build_report(
            session, period=Period.containing(now, PeriodKind.YEAR), cipher=runtime.cipher,
            now=runtime.clock.now(), reason_labels=labels,
        )  # fmt: skip
        html = report_module.render_html(data)
        xlsx = report_module.render_xlsx(data)
    (tmp_path / "report.html").write_text(html, encoding="utf-8")
    (tmp_path / "report.xlsx").write_bytes(xlsx)
    total = data.summary.total
    figures = {
        "called": total.called, "attempts": total.attempts, "reached": total.reached,
        "completed": total.completed, "rated": total.rated, "satisfied": total.satisfied,
        "reasons": {r.code: r.count for r in total.reasons if r.count},
    }  # fmt: skip
    expected = {
        "called": len({a.dossier_id for a in dialled}), "attempts": len(dialled), "reached": len(reached),
        "completed": len(completed), "rated": len(satisfied) + len(unsatisfied), "satisfied": len(satisfied),
        "reasons": dict(reasons),
    }  # fmt: skip
    assert figures == expected, (figures, expected, dict(did))
    assert total.satisfied_rate == pytest.approx(len(satisfied) / (len(satisfied) + len(unsatisfied)))
    # Per agency too: the rows add up to the city line and each matches its own citizens.
    with session_scope(runtime.sessions) as session:
        agency_of = dict(session.execute(sql_select(Dossier.id, Dossier.agency_id)).all())
    for row in data.summary.rows:
        mine = [a for a in completed if agency_of[a.dossier_id] == row.key.agency_id]
        assert row.figures.completed == len(mine)
        assert row.figures.satisfied == sum(1 for a in mine if EXPECTED[behaviour[a.id]].satisfied)
    assert sum(r.figures.completed for r in data.summary.rows) == total.completed
    # The rendered reports show the same figures: the city line and every agency's line of the XLSX.
    assert "Toàn thành phố" in html and report_module.pct(total.satisfied_rate) in html
    sheet = load_workbook(io.BytesIO(xlsx), read_only=True)["Tổng hợp"]
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    header = next(r for r in rows if r and r[0] == "Mã cơ quan")
    lines = {
        r[0] or r[1]: dict(zip(header, r, strict=True)) for r in rows[rows.index(header) + 1 :] if any(r)
    }
    code_of = {row.key.agency_id: row.agency_code for row in data.summary.rows}

    def xlsx_expected(mine: list[Any]) -> dict[str, int]:
        done = [a for a in mine if EXPECTED[behaviour[a.id]].completed]
        out = {
            "Số hồ sơ đã gọi": len({a.dossier_id for a in mine}),
            "Số hồ sơ liên lạc được": sum(1 for a in mine if behaviour[a.id] in ANSWERED),
            "Số phiếu hoàn thành": len(done),
            "Số phiếu có đánh giá": sum(1 for a in done if EXPECTED[behaviour[a.id]].satisfied is not None),
            "Số phiếu hài lòng": sum(1 for a in done if EXPECTED[behaviour[a.id]].satisfied),
        }
        for code in reasons:
            out[f"Lý do: {labels[code]}"] = sum(EXPECTED[behaviour[a.id]].reasons.count(code) for a in done)
        return out

    def xlsx_line(key: str, want: dict[str, int]) -> dict[str, object]:
        return {column: lines[key][column] for column in want}

    want = xlsx_expected(dialled)
    assert xlsx_line("Tổng cộng", want) == want
    for agency_id, code in code_of.items():
        want = xlsx_expected([a for a in dialled if agency_of[a.dossier_id] == agency_id])
        assert xlsx_line(str(code), want) == want, code
    print(
        f"e2e: {len(dialled)} calls, attempts {dict(Counter(a.status for a in attempts))}"
        f" ({dict(did)}), targets {dict(states)}, report {figures}, "
        f"{dial_seconds:.1f} s to the last final target, {time.monotonic() - started:.1f} s in all"
    )
