"""API keys and alert subscriptions can be listed and removed; a revoked key is refused at once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from rich.console import Console
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from callcenter.analysis import alerts, cli
from callcenter.analysis.http import router
from callcenter.analysis.models import AlertSubscription, DeliveryMode, NotifierKind
from callcenter.analysis.settings import AnalysisSettings
from callcenter.api.auth import KeyListing, Role, hash_key, issue_key, list_keys, revoke_key
from callcenter.core.clock import ManualClock
from callcenter.core.errors import ConflictError, NotFound
from callcenter.core.models import ApiKey
from callcenter.core.pii import PiiCipher
from callcenter.core.runtime import Runtime

from .conftest import Builder, cli_runtime, one_agency

NOW = datetime(2026, 4, 2, 3, 0, tzinfo=UTC)
LATER = datetime(2026, 4, 2, 4, 0, tzinfo=UTC)
WEBHOOK = "https://hooks.sxd.example.vn/services/T0K3N-secret-path"


# --- services, on SQLite and PostgreSQL (rolled back) -------------------------------------------------


def test_revoke_key_sets_revoked_at_once(db_session: Session) -> None:
    _raw, row = issue_key(db_session, name="Sở Nội vụ", role=Role.HOME_AFFAIRS, now=NOW)
    revoked = revoke_key(db_session, key_id=row.id, now=LATER)
    assert revoked.revoked_at == LATER
    with pytest.raises(ConflictError, match=f"API key {row.id} was already revoked"):
        revoke_key(db_session, key_id=row.id, now=NOW)
    assert db_session.get(ApiKey, row.id, populate_existing=True).revoked_at == LATER  # type: ignore[union-attr]
    with pytest.raises(NotFound, match="no API key with id 987654"):
        revoke_key(db_session, key_id=987654, now=NOW)


def test_list_keys_never_carries_the_key_or_its_hash(db_session: Session, build: Builder) -> None:
    agency = build.agency("XD", "Sở Xây dựng")
    raw, row = issue_key(db_session, name="Sở XD", role=Role.AGENCY, now=NOW, agency_id=agency.id)
    _raw2, other = issue_key(db_session, name="old", role=Role.OPERATOR, now=NOW)
    revoke_key(db_session, key_id=other.id, now=LATER)
    assert {f.name for f in fields(KeyListing)} == {
        "key_id",
        "name",
        "role",
        "agency_code",
        "created_at",
        "revoked_at",
    }
    listed = {k.key_id: k for k in list_keys(db_session)}
    assert listed[row.id] == KeyListing(row.id, "Sở XD", "agency", "XD", NOW, None)
    assert listed[other.id].revoked_at == LATER
    assert other.id not in {k.key_id for k in list_keys(db_session, include_revoked=False)}
    assert raw not in repr(listed) and hash_key(raw) not in repr(listed)


def test_end_subscription_stops_new_alerts(db_session: Session, build: Builder, cipher: PiiCipher) -> None:
    a, b = build.agency("XD"), build.agency("TP")
    f = build.field("DD")
    sub, _secret = alerts.add_subscription(
        db_session,
        agency_id=a.id,
        notifier=NotifierKind.WEBHOOK,
        target=WEBHOOK,
        mode=DeliveryMode.IMMEDIATE,
        cipher=cipher,
        now=NOW,
    )
    other, _ = alerts.add_subscription(
        db_session,
        agency_id=b.id,
        notifier=NotifierKind.EMAIL,
        target="motcua@stp.example.vn",
        mode=DeliveryMode.DIGEST,
        cipher=cipher,
        now=NOW,
    )
    settings = AnalysisSettings()
    first = build.called_response(build.dossier(a, f, returned_at=NOW), a, f, at=NOW, satisfied=False)
    assert len(alerts.raise_alerts(db_session, response_id=first.id, now=NOW, settings=settings)) == 1

    # The alert raised before is cancelled (never delivered), and the count says so.
    assert alerts.end_subscription(db_session, subscription_id=sub.id) == 1
    later = build.called_response(build.dossier(a, f, returned_at=NOW), a, f, at=LATER, satisfied=False)
    assert alerts.raise_alerts(db_session, response_id=later.id, now=LATER, settings=settings) == []

    with pytest.raises(ConflictError, match="already been ended"):
        alerts.end_subscription(db_session, subscription_id=sub.id)
    with pytest.raises(NotFound, match="no alert subscription with id 987654"):
        alerts.end_subscription(db_session, subscription_id=987654)

    listed = alerts.list_subscriptions(db_session)
    by_id = {s.subscription_id: s for s in listed}
    assert by_id[sub.id].active is False and by_id[sub.id].target == "https://hooks.sxd.example.vn/…"
    assert by_id[other.id].target == "motcua@stp.example.vn" and by_id[other.id].active is True
    assert [s.subscription_id for s in alerts.list_subscriptions(db_session, agency_id=b.id)] == [other.id]
    assert sub.id not in {
        s.subscription_id for s in alerts.list_subscriptions(db_session, include_ended=False)
    }


# --- the command line and the HTTP API on one committed SQLite database ------------------------------


@pytest.fixture
def runtime(tmp_path: Path, cipher: PiiCipher, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    with cli_runtime(tmp_path, cipher, monkeypatch, one_agency, clock=ManualClock(NOW)) as rt:
        monkeypatch.setattr(cli, "console", Console(width=200))  # table rows on one line each
        yield rt


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    app = FastAPI()
    app.state.runtime = runtime
    app.include_router(router)
    with TestClient(app) as c:
        yield c


def _issue(runner: CliRunner, *args: str) -> tuple[int, str]:
    result = runner.invoke(cli.app, ["apikey", "issue", *args])
    assert result.exit_code == 0, result.output
    first, *_rest, raw = result.output.strip().splitlines()
    return int(first.split()[2].rstrip(",")), raw


def test_revoked_key_is_refused_at_once_over_http(runtime: Runtime, client: TestClient) -> None:
    runner = CliRunner()
    key_id, raw = _issue(runner, "--role", "home_affairs", "--name", "Sở Nội vụ")
    assert client.get("/analysis/summary", headers={"X-API-Key": raw}).status_code == 200

    revoked = runner.invoke(cli.app, ["apikey", "revoke", str(key_id)])
    assert revoked.exit_code == 0, revoked.output
    assert f"key {key_id}" in revoked.output

    refused = client.get("/analysis/summary", headers={"X-API-Key": raw})
    assert refused.status_code == 401 and refused.json()["detail"] == "unknown or revoked API key"


def test_apikey_list_and_revoke_errors(runtime: Runtime) -> None:
    runner = CliRunner()
    agency_key, raw = _issue(runner, "--role", "agency", "--agency", "XD", "--name", "Sở XD")
    admin_key, _ = _issue(runner, "--role", "admin", "--name", "IOC")
    assert runner.invoke(cli.app, ["apikey", "revoke", str(admin_key)]).exit_code == 0

    listed = runner.invoke(cli.app, ["apikey", "list"])
    assert listed.exit_code == 0, listed.output
    rows = {line.split("│")[1].strip(): line for line in listed.output.splitlines() if line.count("│") > 2}
    assert "agency" in rows[str(agency_key)] and "XD" in rows[str(agency_key)]
    assert "2026-04-02 10:00" in rows[str(admin_key)].split("│")[6]  # revoked, shown in Da Nang time
    assert raw not in listed.output and hash_key(raw) not in listed.output

    active = runner.invoke(cli.app, ["apikey", "list", "--active"])
    assert f"│ {admin_key} " not in active.output and f"│ {agency_key} " in active.output

    again = runner.invoke(cli.app, ["apikey", "revoke", str(admin_key)])
    assert again.exit_code == 2 and "already revoked" in again.output
    unknown = runner.invoke(cli.app, ["apikey", "revoke", "987654"])
    assert unknown.exit_code == 2 and "no API key with id 987654" in unknown.output


def test_alerts_list_and_unsubscribe(runtime: Runtime) -> None:
    runner = CliRunner()
    subscribed = runner.invoke(cli.app, ["alerts", "subscribe", "--agency", "XD", "--webhook", WEBHOOK])
    assert subscribed.exit_code == 0, subscribed.output
    secret = subscribed.output.strip().splitlines()[-1]
    sub_id = int(subscribed.output.split()[1])

    listed = runner.invoke(cli.app, ["alerts", "list", "--agency", "XD"])
    assert listed.exit_code == 0, listed.output
    assert f"│ {sub_id} " in listed.output and "hooks.sxd.example.vn" in listed.output
    assert "T0K3N" not in listed.output and secret not in listed.output
    assert "active" in listed.output

    ended = runner.invoke(cli.app, ["alerts", "unsubscribe", str(sub_id)])
    assert ended.exit_code == 0, ended.output
    with runtime.sessions() as session:
        assert session.scalar(select(AlertSubscription.active).where(AlertSubscription.id == sub_id)) is False
    only_active = runner.invoke(cli.app, ["alerts", "list", "--active"])
    assert f"│ {sub_id} " not in only_active.output

    again = runner.invoke(cli.app, ["alerts", "unsubscribe", str(sub_id)])
    assert again.exit_code == 2 and "already been ended" in again.output
    unknown = runner.invoke(cli.app, ["alerts", "unsubscribe", "987654"])
    assert unknown.exit_code == 2 and "no alert subscription with id 987654" in unknown.output
    bad_agency = runner.invoke(cli.app, ["alerts", "list", "--agency", "NOPE"])
    assert bad_agency.exit_code == 2 and "NOPE" in bad_agency.output


def test_services_leave_the_commit_to_the_caller(runtime: Runtime, cipher: PiiCipher) -> None:
    with runtime.sessions() as session:
        _raw, key = issue_key(session, name="x", role=Role.OPERATOR, now=NOW)
        sub, _ = alerts.add_subscription(
            session,
            agency_id=1,
            notifier=NotifierKind.EMAIL,
            target="a@b.vn",
            mode=DeliveryMode.IMMEDIATE,
            cipher=cipher,
            now=NOW,
        )
        session.commit()
        key_id, sub_id = key.id, sub.id
    with runtime.sessions() as session:
        revoke_key(session, key_id=key_id, now=LATER)
        alerts.end_subscription(session, subscription_id=sub_id)
        session.rollback()
    with runtime.sessions() as session:
        assert session.get(ApiKey, key_id).revoked_at is None  # type: ignore[union-attr]
        assert session.get(AlertSubscription, sub_id).active is True  # type: ignore[union-attr]
