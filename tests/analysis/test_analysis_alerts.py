"""Negative-answer alerts through a real local SMTP server (aiosmtpd) and a real HTTP webhook receiver."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.analysis import alerts
from callcenter.analysis.adapters.notify import (
    ALERT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Destination,
    Notifier,
    Outgoing,
    verify,
)
from callcenter.analysis.delivery import (
    AlertContext,
    build_notifiers,
    deliver_digests,
    deliver_immediate,
    raise_and_deliver,
    sweep,
)
from callcenter.analysis.labels import reason_labels
from callcenter.analysis.models import Alert, AlertState, AlertSubscription, DeliveryMode, NotifierKind
from callcenter.analysis.settings import AnalysisSettings
from callcenter.asr.service import Transcript, transcribe_comment
from callcenter.celery_app import app as celery_app
from callcenter.core.clock import ManualClock
from callcenter.core.pii import PiiCipher

from .conftest import COMMENT, Builder

NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)  # 09:00 in Da Nang


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted"


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[_Mailbox, int]]:
    box = _Mailbox()
    port = _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


class _Receiver:
    """A webhook endpoint: records each request and answers with the next planned status (else 200)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.plan: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers.items()), body))
                status = receiver.plan.pop(0) if receiver.plan else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/1022"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[_Receiver]:
    receiver = _Receiver()
    yield receiver
    receiver.close()


@pytest.fixture
def ctx(db_session: Session, cipher: PiiCipher, smtp: tuple[_Mailbox, int]) -> AlertContext:
    settings = AnalysisSettings(
        smtp_host="127.0.0.1",
        smtp_port=smtp[1],
        quick_retries=3,
        quick_retry_wait_seconds=0.01,
        max_attempts=3,
    )
    factory = sessionmaker(bind=db_session.connection(), join_transaction_mode="create_savepoint")
    return AlertContext(
        sessions=factory,
        cipher=cipher,
        clock=ManualClock(NOW),
        settings=settings,
        notifiers=build_notifiers(settings),
        labels=reason_labels(),
    )


@pytest.fixture
def setup(build: Builder, ctx: AlertContext, webhook: _Receiver) -> dict[str, Any]:
    agency = build.agency("XD", "Sở Xây dựng")
    other = build.agency("TP", "Sở Tư pháp")
    fld = build.field("DD", "Đất đai")
    _, secret = alerts.add_subscription(
        build.session,
        agency_id=agency.id,
        notifier=NotifierKind.WEBHOOK,
        target=webhook.url,
        mode=DeliveryMode.IMMEDIATE,
        cipher=build.cipher,
        now=NOW,
    )
    alerts.add_subscription(
        build.session,
        agency_id=agency.id,
        notifier=NotifierKind.EMAIL,
        target="motcua@xaydung.danang.gov.vn",
        mode=DeliveryMode.IMMEDIATE,
        cipher=build.cipher,
        now=NOW,
    )
    return {"agency": agency, "other": other, "field": fld, "secret": secret}


def _unsatisfied(build: Builder, s: dict[str, Any], at: datetime = NOW, agency: Any = None) -> int:
    d = build.dossier(agency or s["agency"], s["field"], returned_at=at - timedelta(days=3))
    return build.called_response(
        d,
        agency or s["agency"],
        s["field"],
        at=at - timedelta(minutes=2),
        satisfied=False,
        reasons=(2, 6),
        comment=COMMENT,
    ).id


def test_unsatisfied_answer_reaches_the_agency_by_webhook_and_email_once(
    build: Builder, ctx: AlertContext, setup: dict[str, Any], webhook: _Receiver, smtp: tuple[_Mailbox, int]
) -> None:
    box = smtp[0]
    before = len(box.messages)
    response_id = _unsatisfied(build, setup)
    started = time.monotonic()
    report = raise_and_deliver(ctx, response_id=response_id)
    assert time.monotonic() - started < 5  # "within seconds"
    assert report.sent == 2 and report.errors == []

    ((headers, body),) = webhook.requests
    assert verify(
        setup["secret"], headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER], now=time.time()
    )
    assert not verify(
        "wrong-secret", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER], now=time.time()
    )
    assert headers[ALERT_ID_HEADER].startswith("alert-")
    payload = json.loads(body)
    assert payload["type"] == "unsatisfied_answer" and payload["agency_code"] == "XD"
    (item,) = payload["alerts"]
    assert item["response_id"] == response_id and [r["code"] for r in item["reasons"]] == [2, 6]
    assert "*******456" in item["comment"] and "0905 123 456" not in item["comment"]

    assert len(box.messages) == before + 1
    mail = box.messages[-1]
    assert mail["To"] == "motcua@xaydung.danang.gov.vn"
    assert mail["Subject"] == "[Tổng đài 1022] Ý kiến chưa hài lòng - Sở Xây dựng"
    text = mail.get_content()
    assert "Kính gửi: Sở Xây dựng" in text and "Tiến độ và kết quả giải quyết hồ sơ" in text
    assert "09:00 ngày 10/03/2026" not in text and "08:58 ngày 10/03/2026" in text  # local time of the answer
    for secret in (*build.phones.values(), "Nguyễn Văn An", "048090001234", "0905 123 456"):
        assert secret not in text and secret.encode() not in body

    # Never twice: raising again, the sweep, and a later sweep send nothing more.
    assert raise_and_deliver(ctx, response_id=response_id).sent == 0
    assert sweep(ctx).sent == 0
    assert len(webhook.requests) == 1 and len(box.messages) == before + 1


def test_a_phone_number_spoken_in_a_comment_is_masked_in_the_alert(
    build: Builder, ctx: AlertContext, setup: dict[str, Any]
) -> None:
    spoken = "số của tôi là không chín không năm một hai ba bốn năm sáu, gọi lại giúp"
    d = build.dossier(setup["agency"], setup["field"], returned_at=NOW - timedelta(days=3))
    response = build.called_response(
        d, setup["agency"], setup["field"], at=NOW - timedelta(minutes=2), satisfied=False, comment=spoken
    )
    alert_ids = alerts.raise_alerts(build.session, response_id=response.id, now=NOW, settings=ctx.settings)
    items = alerts.load_items(build.session, alert_ids=alert_ids, cipher=build.cipher)
    assert [i.comment for i in items] == ["số của tôi là *******456, gọi lại giúp"] * len(alert_ids) and items
    message = alerts.compose_single(items[0], ctx.labels)
    for body in (message.text, message.json_body.decode()):
        assert "*******456" in body and "không chín không năm" not in body


def test_satisfied_or_unfinished_answers_raise_nothing(
    build: Builder, ctx: AlertContext, setup: dict[str, Any]
) -> None:
    ok = build.response(agency=setup["agency"], fld=setup["field"], answered_at=NOW, satisfied=True)
    ongoing = build.response(
        agency=setup["agency"], fld=setup["field"], answered_at=NOW, satisfied=False, status="in_progress"
    )
    with ctx.sessions() as s:
        assert alerts.raise_alerts(s, response_id=ok.id, now=NOW, settings=ctx.settings) == []
        assert alerts.raise_alerts(s, response_id=ongoing.id, now=NOW, settings=ctx.settings) == []
    # Another agency without subscriptions: no alert either.
    assert raise_and_deliver(ctx, response_id=_unsatisfied(build, setup, agency=setup["other"])).sent == 0


def test_sweep_catches_answers_nobody_raised(
    build: Builder, ctx: AlertContext, setup: dict[str, Any], webhook: _Receiver
) -> None:
    first, second = _unsatisfied(build, setup), _unsatisfied(build, setup)
    _unsatisfied(build, setup, at=NOW - timedelta(days=5))  # older than the look-back: left alone
    report = sweep(ctx)
    assert report.sent == 4
    assert sorted(json.loads(b)["alerts"][0]["response_id"] for _h, b in webhook.requests) == [first, second]


def test_transient_errors_are_retried_with_backoff_then_given_up(
    build: Builder, ctx: AlertContext, setup: dict[str, Any], webhook: _Receiver, db_session: Session
) -> None:
    # Two 503s then 200: tenacity's quick retries deliver it in the same pass.
    webhook.plan = [503, 503]
    response_id = _unsatisfied(build, setup)
    report = raise_and_deliver(ctx, response_id=response_id)
    assert report.sent == 2 and len(webhook.requests) == 3

    # A receiver that stays down: the alert waits with a growing delay, then fails after max_attempts.
    webhook.plan = [503] * 100
    other = _unsatisfied(build, setup)
    report = raise_and_deliver(ctx, response_id=other)
    assert (report.sent, report.retry_later) == (1, 1)  # e-mail went, the webhook will be retried
    row = db_session.scalar(select(Alert).where(Alert.response_id == other, Alert.state == "pending"))
    assert row is not None and row.attempts == 1
    assert row.next_attempt_at == NOW + timedelta(seconds=ctx.settings.retry_base_seconds)
    assert deliver_immediate(ctx).sent == 0  # not due yet
    clock = ctx.clock
    assert isinstance(clock, ManualClock)
    clock.advance(timedelta(seconds=61))
    assert deliver_immediate(ctx).retry_later == 1
    db_session.refresh(row)
    assert row.attempts == 2 and row.next_attempt_at == clock.now() + timedelta(seconds=120)
    clock.advance(timedelta(seconds=121))
    assert deliver_immediate(ctx).failed == 1
    db_session.refresh(row)
    assert row.state == AlertState.FAILED.value and "HTTP 503" in (row.last_error or "")


def test_permanent_error_fails_at_once(
    build: Builder, ctx: AlertContext, setup: dict[str, Any], webhook: _Receiver, db_session: Session
) -> None:
    webhook.plan = [410]
    response_id = _unsatisfied(build, setup)
    report = raise_and_deliver(ctx, response_id=response_id)
    assert (report.sent, report.failed) == (1, 1) and len(webhook.requests) == 1


def test_compare_and_set_claims(
    build: Builder, ctx: AlertContext, setup: dict[str, Any], db_session: Session
) -> None:
    response_id = _unsatisfied(build, setup)
    ids = alerts.raise_alerts(db_session, response_id=response_id, now=NOW, settings=ctx.settings)
    assert len(ids) == 2
    assert alerts.raise_alerts(db_session, response_id=response_id, now=NOW, settings=ctx.settings) == []
    first = alerts.claim(db_session, alert_id=ids[0], now=NOW, lease_seconds=60)
    assert first == 1
    assert alerts.claim(db_session, alert_id=ids[0], now=NOW, lease_seconds=60) is None  # already taken
    # The holder died: after the lease another worker takes over, and the first can no longer finish.
    later = NOW + timedelta(seconds=61)
    assert alerts.claim(db_session, alert_id=ids[0], now=later, lease_seconds=60) == 2
    assert not alerts.mark_sent(db_session, alert_id=ids[0], attempt=1, now=later)
    assert alerts.mark_sent(db_session, alert_id=ids[0], attempt=2, now=later)
    assert alerts.claim(db_session, alert_id=ids[0], now=later + timedelta(hours=1), lease_seconds=60) is None


def test_daily_digest(
    build: Builder, ctx: AlertContext, setup: dict[str, Any], smtp: tuple[_Mailbox, int], db_session: Session
) -> None:
    box = smtp[0]
    alerts.add_subscription(
        db_session,
        agency_id=setup["other"].id,
        notifier=NotifierKind.EMAIL,
        target="vanphong@tuphap.danang.gov.vn",
        mode=DeliveryMode.DIGEST,
        cipher=build.cipher,
        now=NOW,
    )
    for _ in range(3):
        raise_and_deliver(ctx, response_id=_unsatisfied(build, setup, agency=setup["other"]))
    before = len(box.messages)
    assert deliver_digests(ctx).sent == 0  # held until 07:00 tomorrow, local time
    clock = ctx.clock
    assert isinstance(clock, ManualClock)
    clock.set(datetime(2026, 3, 11, 0, 1, tzinfo=UTC))  # 07:01 on 11/03 in Da Nang
    report = deliver_digests(ctx)
    assert report.sent == 3
    assert len(box.messages) == before + 1
    mail = box.messages[-1]
    assert mail["Subject"].startswith("[Tổng đài 1022] Tổng hợp 3 ý kiến chưa hài lòng ngày 11/03/2026")
    assert mail.get_content().count("Mã phiếu khảo sát") == 3
    assert deliver_digests(ctx).sent == 0


def test_subscription_validation(db_session: Session, build: Builder, cipher: PiiCipher) -> None:
    agency = build.agency("Q1")
    with pytest.raises(alerts.ValidationError, match="target"):
        alerts.add_subscription(
            db_session,
            agency_id=agency.id,
            notifier=NotifierKind.WEBHOOK,
            target="ftp://x",
            mode=DeliveryMode.IMMEDIATE,
            cipher=cipher,
            now=NOW,
        )
    with pytest.raises(alerts.ValidationError, match="e-mail"):
        alerts.add_subscription(
            db_session,
            agency_id=agency.id,
            notifier=NotifierKind.EMAIL,
            target="not an address",
            mode=DeliveryMode.IMMEDIATE,
            cipher=cipher,
            now=NOW,
        )


def test_celery_tasks_are_registered_under_their_names() -> None:
    import callcenter.analysis.tasks  # noqa: F401 - registers the tasks on the app

    assert {"analysis.raise_alert", "analysis.send_alerts", "analysis.detect_anomalies"} <= set(
        celery_app.tasks
    )


# --- an answer whose recorded comment is still being transcribed -------------------------------------

SPOKEN = "Tôi phải đi lại nhiều lần, chờ đợi rất lâu, gọi số 0905 123 456."


class _Hears:
    """A speech engine that hears a fixed sentence (the real engines are tested in tests/asr)."""

    name = "fixed"
    sample_rate = 8000

    def __init__(self, text: str) -> None:
        self.text = text

    def transcribe(
        self, pcm16: bytes, sample_rate: int, *, phrases: Sequence[str] | None = None
    ) -> Transcript:
        return Transcript(self.text, 0.9, engine=self.name)


def _unsatisfied_with_recording(build: Builder, s: dict[str, Any]) -> int:
    """ "Chưa hài lòng", no reason keyed in, a comment recorded and queued for transcription."""
    d = build.dossier(s["agency"], s["field"], returned_at=NOW - timedelta(days=3))
    row = build.called_response(d, s["agency"], s["field"], at=NOW - timedelta(minutes=2), satisfied=False)
    row.recording_ref = "recordings/2026/03/10/comment.wav.enc"
    row.comment_status = "pending"
    build.session.flush()
    return row.id


def _alert_rows(db_session: Session, response_id: int) -> list[Alert]:
    stmt = select(Alert).where(Alert.response_id == response_id).execution_options(populate_existing=True)
    return list(db_session.scalars(stmt))


def test_alert_waits_for_the_transcript_and_carries_it_and_its_reasons(
    build: Builder,
    ctx: AlertContext,
    setup: dict[str, Any],
    webhook: _Receiver,
    smtp: tuple[_Mailbox, int],
    db_session: Session,
) -> None:
    box, clock = smtp[0], ctx.clock
    assert isinstance(clock, ManualClock)
    before = len(box.messages)
    response_id = _unsatisfied_with_recording(build, setup)

    # The call has just ended: the alert task runs while the transcription is still queued.
    report = raise_and_deliver(ctx, response_id=response_id)
    assert (report.sent, report.waiting_for_transcript) == (0, 2)
    rows = _alert_rows(db_session, response_id)
    assert len(rows) == 2
    assert {(r.state, r.attempts) for r in rows} == {(AlertState.PENDING.value, 0)}  # no attempt spent
    assert {r.next_attempt_at for r in rows} == {
        NOW + timedelta(seconds=ctx.settings.transcript_wait_poll_seconds)
    }
    clock.advance(timedelta(seconds=20))
    assert sweep(ctx).sent == 0
    assert webhook.requests == [] and len(box.messages) == before

    # The speech worker stores the transcript and the reasons it hears in it.
    result = transcribe_comment(
        db_session,
        response_id=response_id,
        recognizer=_Hears(SPOKEN),
        load_audio=lambda ref: (b"\0\0" * 800, 8000),
        cipher=build.cipher,
    )
    assert result.status == "done" and set(result.reasons_added) == {2, 3}
    clock.advance(timedelta(seconds=20))
    assert sweep(ctx).sent == 2

    ((_headers, body),) = webhook.requests
    (item,) = json.loads(body)["alerts"]
    assert [r["code"] for r in item["reasons"]] == [2, 3] and item["comment_pending"] is False
    assert "chờ đợi rất lâu" in item["comment"] and "*******456" in item["comment"]
    text = box.messages[-1].get_content()
    assert "Phải liên hệ nhiều lần để hoàn thiện hồ sơ" in text and "chờ đợi rất lâu" in text
    assert "(chưa nêu lý do)" not in text and "(không có)" not in text and "0905 123 456" not in text


def test_alert_is_sent_past_the_wait_cap_saying_the_comment_is_being_transcribed(
    build: Builder,
    ctx: AlertContext,
    setup: dict[str, Any],
    webhook: _Receiver,
    smtp: tuple[_Mailbox, int],
    db_session: Session,
) -> None:
    box, clock = smtp[0], ctx.clock
    assert isinstance(clock, ManualClock)
    response_id = _unsatisfied_with_recording(build, setup)
    assert raise_and_deliver(ctx, response_id=response_id).sent == 0
    clock.advance(timedelta(seconds=ctx.settings.transcript_wait_max_seconds - 1))
    assert sweep(ctx).sent == 0  # still within the cap
    clock.advance(timedelta(seconds=ctx.settings.transcript_wait_poll_seconds + 1))
    report = sweep(ctx)
    assert (report.sent, report.waiting_for_transcript) == (2, 0)
    assert {r.state for r in _alert_rows(db_session, response_id)} == {AlertState.SENT.value}

    ((_headers, body),) = webhook.requests
    (item,) = json.loads(body)["alerts"]
    assert item["comment"] is None and item["comment_pending"] is True
    text = box.messages[-1].get_content()
    assert "- Ý kiến của người dân: (ý kiến ghi âm đang được chuyển thành văn bản)" in text
    assert "- Lý do chưa hài lòng: (chưa xác định; ý kiến ghi âm đang được chuyển thành văn bản)" in text
    assert "(không có)" not in text and "(chưa nêu lý do)" not in text


# --- mistyped webhook URLs and unexpected errors --------------------------------------------------------

BAD_WEBHOOK_URLS = {
    "http://sxd.danang.gov.vn:8O80/hook": "Invalid port",  # letter O in the port
    "https://sxd..danang.gov.vn/hook": "empty or over-long label",
}


@pytest.mark.parametrize("url", sorted(BAD_WEBHOOK_URLS))
def test_a_mistyped_webhook_url_is_refused_at_subscribe_time(
    db_session: Session, build: Builder, cipher: PiiCipher, url: str
) -> None:
    agency = build.agency("Q2")
    with pytest.raises(alerts.ValidationError) as refused:
        alerts.add_subscription(
            db_session,
            agency_id=agency.id,
            notifier=NotifierKind.WEBHOOK,
            target=url,
            mode=DeliveryMode.IMMEDIATE,
            cipher=cipher,
            now=NOW,
        )
    message = str(refused.value)
    assert "--webhook" in message and url in message and BAD_WEBHOOK_URLS[url] in message
    assert (
        db_session.scalar(select(AlertSubscription).where(AlertSubscription.agency_id == agency.id)) is None
    )


def test_an_alert_to_an_unusable_webhook_url_fails_and_the_sweep_goes_on(
    build: Builder, ctx: AlertContext, setup: dict[str, Any], webhook: _Receiver, db_session: Session
) -> None:
    # Subscriptions stored before URLs were checked, as an old row would be.
    for url in BAD_WEBHOOK_URLS:
        db_session.add(
            AlertSubscription(
                agency_id=setup["other"].id,
                notifier=NotifierKind.WEBHOOK.value,
                target=url,
                secret_enc=build.cipher.encrypt("old-secret"),
                mode=DeliveryMode.IMMEDIATE.value,
                active=True,
                created_at=NOW - timedelta(days=30),
            )
        )
    db_session.flush()
    # The other agency's answer is older, so its alerts are the first due in the sweep.
    broken = _unsatisfied(build, setup, at=NOW - timedelta(minutes=10), agency=setup["other"])
    fine = _unsatisfied(build, setup)

    report = sweep(ctx)
    assert (report.sent, report.failed) == (2, 2)
    rows = _alert_rows(db_session, broken)
    assert [(r.state, r.attempts) for r in rows] == [(AlertState.FAILED.value, 1)] * 2
    assert all("unusable URL" in (r.last_error or "") for r in rows)
    ((_headers, body),) = webhook.requests
    assert json.loads(body)["alerts"][0]["response_id"] == fine
    assert sweep(ctx).sent == 0 and len(webhook.requests) == 1  # nothing left due, nothing resent


class _BreaksFor:
    """A notifier that raises an unexpected error for one target and hands the others to the real one."""

    def __init__(self, real: Notifier, target: str) -> None:
        self.kind, self.real, self.target = real.kind, real, target

    def send(self, message: Outgoing, destination: Destination) -> None:
        if destination.target == self.target:
            raise RuntimeError("notifier bug")
        self.real.send(message, destination)


def test_an_unexpected_error_fails_that_attempt_and_the_sweep_goes_on(
    build: Builder,
    ctx: AlertContext,
    setup: dict[str, Any],
    webhook: _Receiver,
    db_session: Session,
    caplog: pytest.LogCaptureFixture,
) -> None:
    alerts.add_subscription(
        db_session,
        agency_id=setup["other"].id,
        notifier=NotifierKind.EMAIL,
        target="vanphong@tuphap.danang.gov.vn",
        mode=DeliveryMode.IMMEDIATE,
        cipher=build.cipher,
        now=NOW,
    )
    email = ctx.notifiers[NotifierKind.EMAIL.value]
    breaking = dataclasses.replace(
        ctx,
        notifiers={**ctx.notifiers, email.kind: _BreaksFor(email, "vanphong@tuphap.danang.gov.vn")},
    )
    broken = _unsatisfied(build, setup, at=NOW - timedelta(minutes=10), agency=setup["other"])
    fine = _unsatisfied(build, setup)

    with caplog.at_level(logging.ERROR, logger="callcenter.analysis.delivery"):
        report = sweep(breaking)
    assert (report.sent, report.retry_later) == (2, 1)
    (row,) = _alert_rows(db_session, broken)
    assert (row.state, row.attempts) == (AlertState.PENDING.value, 1)
    assert row.last_error == "unexpected RuntimeError: notifier bug"
    assert row.next_attempt_at == NOW + timedelta(seconds=ctx.settings.retry_base_seconds)
    ((_headers, body),) = webhook.requests
    assert json.loads(body)["alerts"][0]["response_id"] == fine
    logged = caplog.text
    assert f"alert(s) {row.id} " in logged and "RuntimeError" in logged
    for secret in (*build.phones.values(), "Nguyễn Văn An", "048090001234", "0905 123 456", "Tôi phải"):
        assert secret not in logged
