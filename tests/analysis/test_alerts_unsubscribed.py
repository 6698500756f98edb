"""An ended subscription's queued alerts are cancelled and never delivered (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.analysis import alerts
from callcenter.analysis.adapters.notify import Destination, Outgoing
from callcenter.analysis.delivery import AlertContext, deliver_digests, deliver_immediate, sweep
from callcenter.analysis.labels import reason_labels
from callcenter.analysis.models import Alert, AlertState, DeliveryMode, NotifierKind
from callcenter.analysis.settings import AnalysisSettings
from callcenter.core.clock import ManualClock
from callcenter.core.pii import PiiCipher

from .conftest import COMMENT, Builder

NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)  # 09:00 in Da Nang
OLD_HOOK = "https://hooks.old-contractor.example.vn/1022"
OLD_MAIL = "motcua-cu@xaydung.danang.gov.vn"
KEPT_MAIL = "motcua@xaydung.danang.gov.vn"


class _Recorder:
    """A notifier that keeps what it was asked to send, by target."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.sent: list[tuple[str, Outgoing]] = []

    def send(self, message: Outgoing, destination: Destination) -> None:
        self.sent.append((destination.target, message))


@pytest.fixture
def ctx(db_session: Session, cipher: PiiCipher) -> AlertContext:
    settings = AnalysisSettings(max_attempts=3, lease_seconds=60)
    return AlertContext(
        sessions=sessionmaker(bind=db_session.connection(), join_transaction_mode="create_savepoint"),
        cipher=cipher,
        clock=ManualClock(NOW),
        settings=settings,
        notifiers={
            NotifierKind.WEBHOOK.value: _Recorder(NotifierKind.WEBHOOK.value),
            NotifierKind.EMAIL.value: _Recorder(NotifierKind.EMAIL.value),
        },
        labels=reason_labels(),
    )


def _targets(ctx: AlertContext) -> list[str]:
    return [t for notifier in ctx.notifiers.values() for t, _ in notifier.sent]  # type: ignore[attr-defined]


def _subscribe(build: Builder, agency: Any, kind: NotifierKind, target: str, mode: DeliveryMode) -> int:
    sub, _ = alerts.add_subscription(
        build.session,
        agency_id=agency.id,
        notifier=kind,
        target=target,
        mode=mode,
        cipher=build.cipher,
        now=NOW,
    )
    return sub.id


def _unsatisfied(build: Builder, agency: Any, fld: Any) -> int:
    d = build.dossier(agency, fld, returned_at=NOW - timedelta(days=3))
    return build.called_response(
        d, agency, fld, at=NOW - timedelta(minutes=2), satisfied=False, reasons=(6,), comment=COMMENT
    ).id


def _alert(session: Session, response_id: int, subscription_id: int) -> Alert:
    row = session.scalar(
        select(Alert).where(Alert.response_id == response_id, Alert.subscription_id == subscription_id)
    )
    assert row is not None
    session.refresh(row)
    return row


def test_ending_a_subscription_cancels_its_queued_alerts_and_none_is_ever_delivered(
    db_session: Session, build: Builder, ctx: AlertContext
) -> None:
    agency, fld = build.agency("XD", "Sở Xây dựng"), build.field("DD", "Đất đai")
    hook = _subscribe(build, agency, NotifierKind.WEBHOOK, OLD_HOOK, DeliveryMode.IMMEDIATE)
    digest = _subscribe(build, agency, NotifierKind.EMAIL, OLD_MAIL, DeliveryMode.DIGEST)
    kept = _subscribe(build, agency, NotifierKind.EMAIL, KEPT_MAIL, DeliveryMode.IMMEDIATE)
    first, second = _unsatisfied(build, agency, fld), _unsatisfied(build, agency, fld)
    for response_id in (first, second):
        assert (
            len(alerts.raise_alerts(db_session, response_id=response_id, now=NOW, settings=ctx.settings)) == 3
        )
    # The webhook's first alert failed once and waits for its retry (still PENDING, an error recorded).
    retried = _alert(db_session, first, hook).id
    attempt = alerts.claim(db_session, alert_id=retried, now=NOW, lease_seconds=60)
    assert attempt == 1
    assert (
        alerts.mark_failed_attempt(
            db_session,
            alert_id=retried,
            attempt=attempt,
            now=NOW,
            error="HTTP 503",
            permanent=False,
            settings=ctx.settings,
        )
        == AlertState.PENDING
    )

    # Two queued answers each, which the command reports.
    assert alerts.end_subscription(db_session, subscription_id=hook) == 2
    assert alerts.end_subscription(db_session, subscription_id=digest) == 2

    # Well past every retry and the next digest hour, each delivery path sends only to the kept address.
    clock = ctx.clock
    assert isinstance(clock, ManualClock)
    clock.set(NOW + timedelta(days=1, hours=1))
    later = clock.now()
    for mode in DeliveryMode:
        due = alerts.due_alerts(db_session, now=later, mode=mode)
        assert {sub for _, sub in due} <= {kept}
    assert deliver_immediate(ctx).sent == 2
    assert deliver_digests(ctx).sent == 0
    for _ in range(2):  # the sweep runs again and again (a Celery task may run twice): still nothing
        report = sweep(ctx)
        assert (report.sent, report.cancelled, report.failed) == (0, 0, 0)
    assert sorted(_targets(ctx)) == [KEPT_MAIL, KEPT_MAIL]
    assert all(
        alerts.claim(db_session, alert_id=a.id, now=later, lease_seconds=60) is None
        for a in db_session.scalars(select(Alert).where(Alert.subscription_id.in_([hook, digest])))
    )

    # They are cancelled, never sent, with the reason on record.
    for response_id in (first, second):
        for sub in (hook, digest):
            row = _alert(db_session, response_id, sub)
            assert row.state == AlertState.CANCELLED and row.sent_at is None
            assert row.last_error is not None and row.last_error.startswith(alerts.CANCELLED_REASON)
        assert _alert(db_session, response_id, kept).state == AlertState.SENT
    assert _alert(db_session, first, hook).last_error == alerts.CANCELLED_REASON + "; earlier error: HTTP 503"


def test_alerts_caught_in_flight_or_raised_during_the_end_are_not_sent_afterwards(
    db_session: Session, build: Builder, ctx: AlertContext
) -> None:
    agency, fld = build.agency("TP", "Sở Tư pháp"), build.field("HT", "Hộ tịch")
    sub = _subscribe(build, agency, NotifierKind.WEBHOOK, OLD_HOOK, DeliveryMode.IMMEDIATE)
    in_flight, dead_worker, raced = (_unsatisfied(build, agency, fld) for _ in range(3))
    for response_id in (in_flight, dead_worker):
        alerts.raise_alerts(
            db_session, response_id=response_id, now=NOW - timedelta(minutes=10), settings=ctx.settings
        )
    live = _alert(db_session, in_flight, sub).id
    expired = _alert(db_session, dead_worker, sub).id
    live_attempt = alerts.claim(db_session, alert_id=live, now=NOW, lease_seconds=60)
    assert live_attempt == 1
    assert alerts.claim(db_session, alert_id=expired, now=NOW - timedelta(minutes=5), lease_seconds=60) == 1

    # Both are being sent: the end cancels neither of them at once.
    cancelled_at_once = alerts.end_subscription(db_session, subscription_id=sub)
    # A raise that read the subscription as active just before the end still inserts its row.
    db_session.add(
        Alert(
            response_id=raced,
            subscription_id=sub,
            agency_id=agency.id,
            state=AlertState.PENDING.value,
            attempts=0,
            next_attempt_at=NOW,
            created_at=NOW,
        )
    )
    db_session.flush()
    late = _alert(db_session, raced, sub).id

    # The message already handed to the network is recorded truthfully as sent.
    assert alerts.mark_sent(db_session, alert_id=live, attempt=live_attempt, now=NOW)
    # The dead worker's lease has expired, and the late row is due: neither is claimed again.
    assert alerts.claim(db_session, alert_id=expired, now=NOW, lease_seconds=60) is None
    assert alerts.claim(db_session, alert_id=late, now=NOW, lease_seconds=60) is None
    assert alerts.due_alerts(db_session, now=NOW, mode=DeliveryMode.IMMEDIATE) == []

    assert cancelled_at_once == 0
    # The sweep closes both, once.
    assert sweep(ctx).cancelled == 2
    assert sweep(ctx).cancelled == 0
    assert _alert(db_session, in_flight, sub).state == AlertState.SENT
    assert _alert(db_session, dead_worker, sub).state == AlertState.CANCELLED
    assert _alert(db_session, raced, sub).state == AlertState.CANCELLED
    assert _alert(db_session, dead_worker, sub).lease_expires_at is None
    assert _targets(ctx) == []
