"""Negative-answer alerts: one row per (answer, subscription), delivered by compare-and-set.

An ``alerts`` row exists at most once per answer and subscription (unique key), and it moves
``pending → sending → sent`` only through ``UPDATE … WHERE state = :expected``: two workers can never
both claim it, so one answer is never sent twice to one subscriber. If a worker dies between the
network call and the final update, the lease expires and the alert is sent again — the stable message
id (webhook header, e-mail ``Message-ID``) lets the receiver drop that duplicate.

Ending a subscription cancels its alerts not yet sent (``pending → cancelled``, also a failed attempt
waiting for its retry): an agency's old address or a revoked webhook must not receive citizens'
comments after the end. Only a message already handed to the network (``sending`` with a live lease)
may still arrive; an ended subscription's alerts are never claimed again.

An answer whose recorded comment is still being transcribed is not sent yet: its alert stays
PENDING with ``next_attempt_at`` pushed back (:func:`hold_for_transcripts`) until the transcript and
the reasons taken from it are stored, or until ``transcript_wait_max_seconds`` have passed — then it
is sent saying the recorded comment is still being transcribed.

These functions take a session and never commit; :mod:`callcenter.analysis.delivery` is the boundary
that commits each step.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import and_, exists, func, literal, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnElement

from callcenter.analysis.adapters.notify import Outgoing, webhook_url_problem
from callcenter.analysis.models import (
    ALERT_TRANSITIONS,
    Alert,
    AlertState,
    AlertSubscription,
    DeliveryMode,
    NotifierKind,
)
from callcenter.analysis.report import CHANNEL_LABELS
from callcenter.analysis.settings import AnalysisSettings
from callcenter.asr.adapters.comment_store import COMMENT_FAILED, COMMENT_PENDING
from callcenter.core.clock import VN_TZ
from callcenter.core.errors import ConflictError, NotFound, ValidationError
from callcenter.core.pii import PiiCipher, mask_digit_runs
from callcenter.intake.models import Agency, Field
from callcenter.ivr.models import ResponseReason, ResponseStatus, SurveyResponse

FINISHED = (ResponseStatus.COMPLETED.value, ResponseStatus.PARTIAL.value)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _allowed(source: AlertState, target: AlertState) -> None:
    if target not in ALERT_TRANSITIONS[source]:
        raise AssertionError(f"alert transition {source} → {target} is not allowed")


# --- subscriptions -----------------------------------------------------------------------------------


def add_subscription(
    session: Session,
    *,
    agency_id: int,
    notifier: NotifierKind,
    target: str,
    mode: DeliveryMode,
    cipher: PiiCipher,
    now: datetime,
    secret: str | None = None,
) -> tuple[AlertSubscription, str | None]:
    """Subscribe an agency; a webhook gets a signing secret (returned once, stored encrypted)."""
    target = target.strip()
    if notifier == NotifierKind.WEBHOOK:
        problem = webhook_url_problem(target)
        if problem:
            raise ValidationError(f"--webhook '{target}' is not a usable URL: {problem}", field="target")
        secret = secret or secrets.token_urlsafe(32)
    elif not _EMAIL.match(target):
        raise ValidationError(f"'{target}' is not an e-mail address", field="target")
    else:
        secret = None
    row = AlertSubscription(
        agency_id=agency_id,
        notifier=notifier.value,
        target=target,
        secret_enc=cipher.encrypt_optional(secret),
        mode=mode.value,
        active=True,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row, secret


@dataclass(frozen=True)
class SubscriptionListing:
    """A subscription as shown to operators: never its signing secret."""

    subscription_id: int
    agency_code: str
    notifier: str
    target: str  # the e-mail address, or only the webhook's scheme and host (its path may be a token)
    mode: str
    active: bool
    created_at: datetime


def list_subscriptions(
    session: Session, *, agency_id: int | None = None, include_ended: bool = True
) -> list[SubscriptionListing]:
    """The alert subscriptions, of one agency or all, oldest first."""
    stmt = (
        select(
            AlertSubscription.id,
            Agency.code,
            AlertSubscription.notifier,
            AlertSubscription.target,
            AlertSubscription.mode,
            AlertSubscription.active,
            AlertSubscription.created_at,
        )
        .join(Agency, Agency.id == AlertSubscription.agency_id)
        .order_by(AlertSubscription.id)
    )
    if agency_id is not None:
        stmt = stmt.where(AlertSubscription.agency_id == agency_id)
    if not include_ended:
        stmt = stmt.where(AlertSubscription.active.is_(True))
    return [
        SubscriptionListing(
            subscription_id=sub_id,
            agency_code=code,
            notifier=notifier,
            target=_shown_target(notifier, target),
            mode=mode,
            active=active,
            created_at=created_at,
        )
        for sub_id, code, notifier, target, mode, active, created_at in session.execute(stmt)
    ]


def _shown_target(notifier: str, target: str) -> str:
    if notifier != NotifierKind.WEBHOOK.value:
        return target
    parts = urlsplit(target)
    return f"{parts.scheme}://{parts.hostname or ''}/…"


def end_subscription(session: Session, *, subscription_id: int) -> int:
    """Stop a subscription (``active = false``) and cancel its queued alerts; returns how many.

    No new alert is raised for it, and the alerts already raised but not sent (waiting, or waiting
    for a retry) become CANCELLED: they are never delivered. The row is kept, since sent alerts refer
    to it. One being sent at this very moment may still arrive. The caller commits. An unknown id
    raises :class:`NotFound`, an already ended one :class:`ConflictError`.
    """
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(AlertSubscription)
        .where(AlertSubscription.id == subscription_id, AlertSubscription.active.is_(True))
        .values(active=False)
    )
    if result.rowcount != 1:
        if session.get(AlertSubscription, subscription_id) is None:
            raise NotFound(f"no alert subscription with id {subscription_id}")
        raise ConflictError(f"alert subscription {subscription_id} has already been ended")
    return cancel_for_ended_subscriptions(session, subscription_id=subscription_id)


CANCELLED_REASON = "cancelled: the subscription was ended before delivery"


def cancel_for_ended_subscriptions(
    session: Session, *, now: datetime | None = None, subscription_id: int | None = None
) -> int:
    """Cancel the undelivered alerts of ended subscriptions (of one, or all); returns how many.

    PENDING rows (never tried, or waiting for a retry) are cancelled. Given ``now``, so are SENDING
    rows whose lease has expired (their worker is presumed dead, as for a takeover), which would
    otherwise stay SENDING for good. A live lease is left to finish. Compare-and-set on the state, so
    running it twice, or beside a worker, is harmless. An alert raised while its subscription was
    being ended is caught by the next sweep's call.
    """
    _allowed(AlertState.PENDING, AlertState.CANCELLED)
    _allowed(AlertState.SENDING, AlertState.CANCELLED)
    undelivered = Alert.state == AlertState.PENDING.value
    if now is not None:
        undelivered = or_(
            undelivered, and_(Alert.state == AlertState.SENDING.value, Alert.lease_expires_at < now)
        )
    ended = select(AlertSubscription.id).where(AlertSubscription.active.is_(False))
    if subscription_id is not None:
        ended = ended.where(AlertSubscription.id == subscription_id)
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Alert)
        .where(Alert.subscription_id.in_(ended), undelivered)
        .values(
            state=AlertState.CANCELLED.value,
            lease_expires_at=None,
            # The last failed attempt's error, if any, is kept after the reason.
            last_error=func.coalesce(
                literal(CANCELLED_REASON + "; earlier error: ") + Alert.last_error, CANCELLED_REASON
            ),
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)


# --- raising -----------------------------------------------------------------------------------------


def next_digest_at(now: datetime, hour_local: int) -> datetime:
    """The next digest time (``hour_local`` o'clock in Da Nang) strictly after ``now``."""
    local = now.astimezone(VN_TZ)
    at = local.replace(hour=hour_local, minute=0, second=0, microsecond=0)
    if at <= local:
        at += timedelta(days=1)
    return at


def _insert_alerts(
    session: Session, pairs: Sequence[tuple[int, int, int, str]], *, now: datetime, settings: AnalysisSettings
) -> list[int]:
    """Insert (response, subscription, agency, mode) alerts that do not exist yet; returns new ids."""
    created: list[int] = []
    for response_id, subscription_id, agency_id, mode in pairs:
        due = now if mode == DeliveryMode.IMMEDIATE.value else next_digest_at(now, settings.digest_hour_local)
        alert = Alert(
            response_id=response_id,
            subscription_id=subscription_id,
            agency_id=agency_id,
            state=AlertState.PENDING.value,
            attempts=0,
            next_attempt_at=due,
            created_at=now,
        )
        try:
            # A concurrent raise for the same answer loses on the unique key, and only its row is undone.
            with session.begin_nested():
                session.add(alert)
        except IntegrityError:
            continue
        created.append(alert.id)
    return created


def raise_alerts(
    session: Session, *, response_id: int, now: datetime, settings: AnalysisSettings
) -> list[int]:
    """Create the alerts of one answer if it is a finished "not satisfied"; idempotent."""
    response = session.get(SurveyResponse, response_id)
    if response is None or response.satisfied is not False or response.status not in FINISHED:
        return []
    rows = session.execute(
        select(AlertSubscription.id, AlertSubscription.mode).where(
            AlertSubscription.agency_id == response.agency_id,
            AlertSubscription.active.is_(True),
            ~exists().where(Alert.response_id == response_id, Alert.subscription_id == AlertSubscription.id),
        )
    ).all()
    return _insert_alerts(
        session,
        [(response_id, sid, response.agency_id, mode) for sid, mode in rows],
        now=now,
        settings=settings,
    )


def scan_unsatisfied(
    session: Session, *, now: datetime, settings: AnalysisSettings, limit: int = 1000
) -> list[int]:
    """Create alerts for recent finished unsatisfied answers that have none yet (the safety net)."""
    since = now - timedelta(hours=settings.scan_lookback_hours)
    rows = session.execute(
        select(SurveyResponse.id, AlertSubscription.id, SurveyResponse.agency_id, AlertSubscription.mode)
        .join(
            AlertSubscription,
            and_(AlertSubscription.agency_id == SurveyResponse.agency_id, AlertSubscription.active.is_(True)),
        )
        .where(
            SurveyResponse.satisfied.is_(False),
            SurveyResponse.status.in_(FINISHED),
            SurveyResponse.answered_at >= since,
            ~exists().where(
                Alert.response_id == SurveyResponse.id, Alert.subscription_id == AlertSubscription.id
            ),
        )
        .order_by(SurveyResponse.answered_at)
        .limit(limit)
    ).all()
    return _insert_alerts(session, [tuple(r) for r in rows], now=now, settings=settings)  # type: ignore[misc]


# --- delivery state machine --------------------------------------------------------------------------


def _claimable(now: datetime) -> ColumnElement[bool]:
    return and_(
        or_(
            and_(Alert.state == AlertState.PENDING.value, Alert.next_attempt_at <= now),
            and_(Alert.state == AlertState.SENDING.value, Alert.lease_expires_at < now),
        ),
        # An ended subscription's alert is never claimed, even one raised as it was being ended.
        Alert.subscription_id.in_(select(AlertSubscription.id).where(AlertSubscription.active.is_(True))),
    )


def due_alerts(
    session: Session,
    *,
    now: datetime,
    mode: DeliveryMode,
    limit: int = 100,
    only_ids: Sequence[int] | None = None,
) -> list[tuple[int, int]]:
    """(alert id, subscription id) of alerts ready to send in the given mode, oldest first.

    Only alerts of active subscriptions: an ended one's are cancelled, never sent.
    """
    stmt = (
        select(Alert.id, Alert.subscription_id)
        .join(AlertSubscription, AlertSubscription.id == Alert.subscription_id)
        .where(_claimable(now), AlertSubscription.mode == mode.value)
        .order_by(Alert.next_attempt_at, Alert.id)
        .limit(limit)
    )
    if only_ids is not None:
        stmt = stmt.where(Alert.id.in_(list(only_ids)))
    return [(a, s) for a, s in session.execute(stmt)]


def hold_for_transcripts(
    session: Session, *, alert_ids: Sequence[int], now: datetime, settings: AnalysisSettings
) -> list[int]:
    """Put off the given alerts whose answer's recorded comment is still being transcribed.

    The call's alert and its transcription are queued together, so the alert usually comes first;
    sent then, it would lack the comment and the reasons the transcript adds. A held alert stays
    PENDING (no attempt is counted) with ``next_attempt_at`` moved ``transcript_wait_poll_seconds``
    on; once ``transcript_wait_max_seconds`` have passed since it was raised it is no longer held.
    Returns the ids held (not to be claimed now).
    """
    if not alert_ids:
        return []
    held = list(
        session.scalars(
            select(Alert.id)
            .join(SurveyResponse, SurveyResponse.id == Alert.response_id)
            .where(
                Alert.id.in_(list(alert_ids)),
                Alert.state == AlertState.PENDING.value,
                Alert.created_at > now - timedelta(seconds=settings.transcript_wait_max_seconds),
                SurveyResponse.comment_status == COMMENT_PENDING,
            )
        )
    )
    if held:
        # Only a still-PENDING row is pushed back: one another worker has just claimed stays its own.
        session.execute(
            update(Alert)
            .where(Alert.id.in_(held), Alert.state == AlertState.PENDING.value)
            .values(next_attempt_at=now + timedelta(seconds=settings.transcript_wait_poll_seconds))
            .execution_options(synchronize_session=False)
        )
    return held


def claim(session: Session, *, alert_id: int, now: datetime, lease_seconds: int) -> int | None:
    """PENDING (due) or SENDING (lease expired) → SENDING; returns the attempt number, or None if lost.

    None too for an alert of an ended subscription (or a cancelled one): it is not to be sent.
    """
    _allowed(AlertState.PENDING, AlertState.SENDING)
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Alert)
        .where(Alert.id == alert_id, _claimable(now))
        .values(
            state=AlertState.SENDING.value,
            attempts=Alert.attempts + 1,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    return int(session.scalar(select(Alert.attempts).where(Alert.id == alert_id)) or 0)


def mark_sent(session: Session, *, alert_id: int, attempt: int, now: datetime) -> bool:
    """SENDING → SENT, only for the holder of this attempt."""
    _allowed(AlertState.SENDING, AlertState.SENT)
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Alert)
        .where(Alert.id == alert_id, Alert.state == AlertState.SENDING.value, Alert.attempts == attempt)
        .values(state=AlertState.SENT.value, sent_at=now, lease_expires_at=None, last_error=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def retry_delay(attempt: int, settings: AnalysisSettings) -> timedelta:
    """Exponential back-off between database-polled retries: base·2^(attempt-1), capped."""
    seconds = min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** max(0, attempt - 1))
    return timedelta(seconds=seconds)


def mark_failed_attempt(
    session: Session,
    *,
    alert_id: int,
    attempt: int,
    now: datetime,
    error: str,
    permanent: bool,
    settings: AnalysisSettings,
) -> AlertState | None:
    """SENDING → PENDING (retry later) or FAILED (permanent error, or attempts used up)."""
    final = permanent or attempt >= settings.max_attempts
    target = AlertState.FAILED if final else AlertState.PENDING
    _allowed(AlertState.SENDING, target)
    values: dict[str, object] = {"state": target.value, "lease_expires_at": None, "last_error": error[:2000]}
    if not final:
        values["next_attempt_at"] = now + retry_delay(attempt, settings)
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Alert)
        .where(Alert.id == alert_id, Alert.state == AlertState.SENDING.value, Alert.attempts == attempt)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return target if result.rowcount == 1 else None


# --- messages ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertItem:
    alert_id: int
    response_id: int
    agency_code: str
    agency_name: str
    field_name: str | None
    channel: str
    answered_at: datetime
    reasons: tuple[int, ...]
    comment: str | None  # masked
    comment_status: str = "none"  # SurveyResponse.comment_status: none | pending | done | failed


def load_items(session: Session, *, alert_ids: Sequence[int], cipher: PiiCipher) -> list[AlertItem]:
    """What the messages say about each answer: never a name or phone; comments masked."""
    rows = session.execute(
        select(
            Alert.id,
            SurveyResponse.id.label("response_id"),
            Agency.code,
            Agency.name,
            Field.name.label("field_name"),
            SurveyResponse.channel,
            SurveyResponse.answered_at,
            SurveyResponse.comment_enc,
            SurveyResponse.comment_status,
        )
        .join(SurveyResponse, SurveyResponse.id == Alert.response_id)
        .join(Agency, Agency.id == Alert.agency_id)
        .outerjoin(Field, Field.id == SurveyResponse.field_id)
        .where(Alert.id.in_(list(alert_ids)))
        .order_by(SurveyResponse.answered_at, Alert.id)
    ).all()
    reasons: dict[int, list[int]] = {}
    for rid, code in session.execute(
        select(ResponseReason.response_id, ResponseReason.reason_code)
        .where(ResponseReason.response_id.in_([r.response_id for r in rows]))
        .order_by(ResponseReason.reason_code)
    ):
        reasons.setdefault(rid, []).append(code)
    return [
        AlertItem(
            alert_id=r.id,
            response_id=r.response_id,
            agency_code=r.code,
            agency_name=r.name,
            field_name=r.field_name,
            channel=r.channel,
            answered_at=r.answered_at,
            reasons=tuple(reasons.get(r.response_id, [])),
            comment=mask_digit_runs(cipher.decrypt(r.comment_enc)) if r.comment_enc else None,
            comment_status=r.comment_status,
        )
        for r in rows
    ]


SIGNATURE = "Trung tâm Giám sát, điều hành đô thị thông minh thành phố Đà Nẵng (Tổng đài 1022)"
PRIVACY = (
    "Thông tin cá nhân của người tham gia khảo sát được bảo mật "
    "và chỉ cung cấp cho đơn vị thực hiện phúc tra."
)


# What a message says when the citizen recorded a comment whose text is not available (yet).
COMMENT_BEING_TRANSCRIBED = "(ý kiến ghi âm đang được chuyển thành văn bản)"
REASONS_BEING_TRANSCRIBED = "(chưa xác định; ý kiến ghi âm đang được chuyển thành văn bản)"
COMMENT_NOT_TRANSCRIBED = "(người dân có ghi âm ý kiến nhưng chưa chuyển được thành văn bản)"


def _comment_text(item: AlertItem) -> str:
    if item.comment:
        return item.comment
    if item.comment_status == COMMENT_PENDING:
        return COMMENT_BEING_TRANSCRIBED
    if item.comment_status == COMMENT_FAILED:
        return COMMENT_NOT_TRANSCRIBED
    return "(không có)"


def _item_lines(item: AlertItem, labels: Mapping[int, str]) -> list[str]:
    when = item.answered_at.astimezone(VN_TZ).strftime("%H:%M ngày %d/%m/%Y")
    no_reason = REASONS_BEING_TRANSCRIBED if item.comment_status == COMMENT_PENDING else "(chưa nêu lý do)"
    reason_text = "; ".join(labels.get(c, f"lý do mã {c}") for c in item.reasons) or no_reason
    return [
        f"- Mã phiếu khảo sát: {item.response_id}",
        f"- Thời gian đánh giá: {when}",
        f"- Lĩnh vực: {item.field_name or '(không rõ)'}",
        f"- Kênh khảo sát: {CHANNEL_LABELS.get(item.channel, item.channel)}",
        f"- Lý do chưa hài lòng: {reason_text}",
        f"- Ý kiến của người dân: {_comment_text(item)}",
    ]


def _json_item(item: AlertItem, labels: Mapping[int, str]) -> dict[str, object]:
    return {
        "alert_id": item.alert_id,
        "response_id": item.response_id,
        "agency_code": item.agency_code,
        "field": item.field_name,
        "channel": item.channel,
        "answered_at": item.answered_at.isoformat(),
        "reasons": [{"code": c, "label": labels.get(c)} for c in item.reasons],
        "comment": item.comment,
        # True when a recorded comment was still being transcribed as the message was sent.
        "comment_pending": item.comment_status == COMMENT_PENDING,
    }


def compose_single(item: AlertItem, labels: Mapping[int, str]) -> Outgoing:
    """The immediate alert for one unsatisfied answer."""
    text = "\n".join(
        [
            f"Kính gửi: {item.agency_name},",
            "",
            "Tổng đài 1022 vừa ghi nhận một ý kiến chưa hài lòng của người dân, tổ chức "
            "đối với việc giải quyết thủ tục hành chính tại quý cơ quan:",
            *_item_lines(item, labels),
            "",
            "Đề nghị quý cơ quan xem xét, chấn chỉnh kịp thời. " + PRIVACY,
            "",
            "Trân trọng,",
            SIGNATURE,
        ]
    )
    body = {
        "type": "unsatisfied_answer",
        "agency_code": item.agency_code,
        "alerts": [_json_item(item, labels)],
    }
    return Outgoing(
        message_id=f"alert-{item.alert_id}",
        subject=f"[Tổng đài 1022] Ý kiến chưa hài lòng - {item.agency_name}",
        text=text,
        json_body=json.dumps(body, ensure_ascii=False).encode(),
    )


def compose_digest(items: Sequence[AlertItem], labels: Mapping[int, str], *, now: datetime) -> Outgoing:
    """The daily digest: every unsatisfied answer held for one subscription since the last one."""
    first = items[0]
    day = now.astimezone(VN_TZ).strftime("%d/%m/%Y")
    lines = [
        f"Kính gửi: {first.agency_name},",
        "",
        f"Tổng đài 1022 tổng hợp {len(items)} ý kiến chưa hài lòng của người dân, tổ chức gửi quý cơ quan:",
    ]
    for n, item in enumerate(items, 1):
        lines += ["", f"{n}.", *_item_lines(item, labels)]
    lines += [
        "",
        "Đề nghị quý cơ quan xem xét, chấn chỉnh kịp thời. " + PRIVACY,
        "",
        "Trân trọng,",
        SIGNATURE,
    ]
    body = {
        "type": "digest",
        "agency_code": first.agency_code,
        "alerts": [_json_item(i, labels) for i in items],
    }
    return Outgoing(
        message_id="digest-" + "-".join(str(i.alert_id) for i in items[:20]) + f"-n{len(items)}",
        subject=(
            f"[Tổng đài 1022] Tổng hợp {len(items)} ý kiến chưa hài lòng ngày {day} - {first.agency_name}"
        ),
        text="\n".join(lines),
        json_body=json.dumps(body, ensure_ascii=False).encode(),
    )


def subscription_destination(
    session: Session, *, subscription_id: int, cipher: PiiCipher
) -> tuple[str, str, str | None]:
    """(notifier kind, target, decrypted secret) of a subscription."""
    sub = session.get(AlertSubscription, subscription_id)
    if sub is None:
        raise ValidationError(f"no alert subscription {subscription_id}", field="subscription")
    return sub.notifier, sub.target, cipher.decrypt_optional(sub.secret_enc)
