"""The alert delivery loop: the unit-of-work boundary that commits each step.

Each alert is claimed and committed *before* the network call, so a second worker sees it taken; the
result is committed right after. No transaction stays open while a webhook or an SMTP server answers.
Transient errors are retried at once a few times with exponential back-off (tenacity), then left
PENDING with a growing ``next_attempt_at`` that the periodic task polls. An unexpected error while
delivering one message is recorded as that attempt's failure and the loop goes on with the others, so
one broken subscription never holds up every agency's alerts. An answer whose recorded comment is
still being transcribed is held back for a while (:func:`alerts.hold_for_transcripts`). Alerts of an
ended subscription are never claimed; the sweep marks them cancelled.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from callcenter.analysis import alerts
from callcenter.analysis.adapters.notify import (
    Destination,
    EmailNotifier,
    Notifier,
    Outgoing,
    PermanentDeliveryError,
    WebhookNotifier,
)
from callcenter.analysis.models import DeliveryMode, NotifierKind
from callcenter.analysis.settings import AnalysisSettings
from callcenter.core.clock import Clock
from callcenter.core.db import session_scope
from callcenter.core.errors import CallCenterError, TransientError
from callcenter.core.pii import PiiCipher, mask_digit_runs

log = logging.getLogger(__name__)


@dataclass
class DeliveryReport:
    sent: int = 0
    retry_later: int = 0
    failed: int = 0
    lost_race: int = 0
    waiting_for_transcript: int = 0
    cancelled: int = 0  # of ended subscriptions: never to be sent
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AlertContext:
    """What the delivery loop needs, built once per process at start-up."""

    sessions: sessionmaker[Session]
    cipher: PiiCipher
    clock: Clock
    settings: AnalysisSettings
    notifiers: Mapping[str, Notifier]
    labels: Mapping[int, str]


def build_notifiers(settings: AnalysisSettings) -> dict[str, Notifier]:
    return {
        NotifierKind.WEBHOOK.value: WebhookNotifier(timeout=settings.webhook_timeout_seconds),
        NotifierKind.EMAIL.value: EmailNotifier(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            starttls=settings.smtp_starttls,
            user=settings.smtp_user,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            timeout=settings.smtp_timeout_seconds,
        ),
    }


def _send(
    notifier: Notifier, message: Outgoing, destination: Destination, settings: AnalysisSettings
) -> None:
    for attempt in Retrying(
        stop=stop_after_attempt(settings.quick_retries),
        wait=wait_exponential(multiplier=settings.quick_retry_wait_seconds, max=8),
        retry=retry_if_exception_type(TransientError),
        reraise=True,
    ):
        with attempt:
            notifier.send(message, destination)


def _finish(
    ctx: AlertContext, claimed: Sequence[tuple[int, int]], error: Exception | None, report: DeliveryReport
) -> None:
    if error is None or isinstance(error, CallCenterError):
        error_text = str(error)
    else:  # stored on the alert, never logged; an unexpected message may still quote a number
        error_text = mask_digit_runs(f"unexpected {type(error).__name__}: {error}")
    with session_scope(ctx.sessions) as session:
        now = ctx.clock.now()
        for alert_id, attempt in claimed:
            if error is None:
                if alerts.mark_sent(session, alert_id=alert_id, attempt=attempt, now=now):
                    report.sent += 1
                continue
            state = alerts.mark_failed_attempt(
                session,
                alert_id=alert_id,
                attempt=attempt,
                now=now,
                error=error_text,
                permanent=isinstance(error, PermanentDeliveryError),
                settings=ctx.settings,
            )
            if state == alerts.AlertState.FAILED:
                report.failed += 1
            elif state == alerts.AlertState.PENDING:
                report.retry_later += 1
    if error is not None:
        report.errors.append(error_text)


def _compose_and_send(
    ctx: AlertContext, subscription_id: int, alert_ids: Sequence[int], *, digest: bool
) -> None:
    with session_scope(ctx.sessions) as session:
        now = ctx.clock.now()
        kind, target, secret = alerts.subscription_destination(
            session, subscription_id=subscription_id, cipher=ctx.cipher
        )
        items = alerts.load_items(session, alert_ids=alert_ids, cipher=ctx.cipher)
    message = (
        alerts.compose_digest(items, ctx.labels, now=now)
        if digest
        else alerts.compose_single(items[0], ctx.labels)
    )
    _send(ctx.notifiers[kind], message, Destination(target, secret), ctx.settings)


def _deliver_group(
    ctx: AlertContext, subscription_id: int, alert_ids: Sequence[int], *, digest: bool, report: DeliveryReport
) -> None:
    with session_scope(ctx.sessions) as session:
        now = ctx.clock.now()
        held = set(alerts.hold_for_transcripts(session, alert_ids=alert_ids, now=now, settings=ctx.settings))
        report.waiting_for_transcript += len(held)
        claimed: list[tuple[int, int]] = []
        for alert_id in alert_ids:
            if alert_id in held:
                continue
            attempt = alerts.claim(
                session, alert_id=alert_id, now=now, lease_seconds=ctx.settings.lease_seconds
            )
            if attempt is None:
                report.lost_race += 1
            else:
                claimed.append((alert_id, attempt))
    # The claims are committed: from here on every outcome, expected or not, is recorded on them.
    if not claimed:
        return
    error: Exception | None = None
    try:
        _compose_and_send(ctx, subscription_id, [a for a, _ in claimed], digest=digest)
    except (TransientError, PermanentDeliveryError) as exc:
        error = exc
    except Exception as exc:  # a bug or a bad stored row must not stop the other agencies' alerts
        log.error(
            "alert(s) %s of subscription %s: unexpected %s while delivering; attempt recorded as failed",
            ",".join(str(a) for a, _ in claimed),
            subscription_id,
            type(exc).__name__,
        )
        error = exc
    _finish(ctx, claimed, error, report)


def deliver_immediate(
    ctx: AlertContext, *, only_ids: Sequence[int] | None = None, limit: int = 200
) -> DeliveryReport:
    """Send every due immediate alert (or only the given ones), one message per answer."""
    report = DeliveryReport()
    with session_scope(ctx.sessions) as session:
        due = alerts.due_alerts(
            session, now=ctx.clock.now(), mode=DeliveryMode.IMMEDIATE, limit=limit, only_ids=only_ids
        )
    for alert_id, subscription_id in due:
        _deliver_group(ctx, subscription_id, [alert_id], digest=False, report=report)
    return report


def deliver_digests(ctx: AlertContext, *, limit: int = 5000) -> DeliveryReport:
    """Send each digest subscription one message with all its due alerts."""
    report = DeliveryReport()
    with session_scope(ctx.sessions) as session:
        due = alerts.due_alerts(session, now=ctx.clock.now(), mode=DeliveryMode.DIGEST, limit=limit)
    groups: dict[int, list[int]] = {}
    for alert_id, subscription_id in due:
        groups.setdefault(subscription_id, []).append(alert_id)
    for subscription_id, ids in groups.items():
        _deliver_group(ctx, subscription_id, ids, digest=True, report=report)
    return report


def raise_and_deliver(ctx: AlertContext, *, response_id: int) -> DeliveryReport:
    """Create the alerts of one answer and send its immediate ones now (the seconds-latency path)."""
    with session_scope(ctx.sessions) as session:
        created = alerts.raise_alerts(
            session, response_id=response_id, now=ctx.clock.now(), settings=ctx.settings
        )
    return deliver_immediate(ctx, only_ids=created) if created else DeliveryReport()


def sweep(ctx: AlertContext) -> DeliveryReport:
    """The periodic pass: cancel what ended subscriptions still hold, alert answers nobody raised,
    retry what is due, send due digests."""
    with session_scope(ctx.sessions) as session:
        now = ctx.clock.now()
        # An alert raised while its subscription was being ended, or a lease that expired since.
        cancelled = alerts.cancel_for_ended_subscriptions(session, now=now)
        alerts.scan_unsatisfied(session, now=now, settings=ctx.settings)
    report = deliver_immediate(ctx)
    report.cancelled += cancelled
    digests = deliver_digests(ctx)
    report.sent += digests.sent
    report.retry_later += digests.retry_later
    report.failed += digests.failed
    report.lost_race += digests.lost_race
    report.waiting_for_transcript += digests.waiting_for_transcript
    report.errors += digests.errors
    return report
