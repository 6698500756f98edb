"""Celery tasks of the analysis domain: alerts within seconds, the periodic sweep, anomaly detection.

Tasks take ids, re-read their rows and are idempotent (alerts are unique per answer and subscriber and
change state by compare-and-set; anomalies are unique per kind, agency and key), so ``acks_late`` and
an overlapping beat run are safe.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from functools import lru_cache
from typing import Any

from sqlalchemy import select

from callcenter.analysis import integrity
from callcenter.analysis.delivery import (
    AlertContext,
    DeliveryReport,
    build_notifiers,
    raise_and_deliver,
    sweep,
)
from callcenter.analysis.labels import reason_labels
from callcenter.analysis.periods import Period, PeriodKind
from callcenter.analysis.settings import get_analysis_settings
from callcenter.celery_app import app
from callcenter.core.db import session_scope
from callcenter.core.runtime import build_runtime
from callcenter.ivr.models import SurveyResponse

log = logging.getLogger(__name__)

# Ids are BIGINT (callcenter.core.db.BigId): a larger one names no row, and the database would refuse it.
_MAX_ID = 2**63 - 1


@lru_cache(maxsize=1)
def _context() -> AlertContext:
    """Built on the first task a worker runs (never at import), then reused by the process."""
    runtime = build_runtime()
    settings = get_analysis_settings()
    return AlertContext(
        sessions=runtime.sessions,
        cipher=runtime.cipher,
        clock=runtime.clock,
        settings=settings,
        notifiers=build_notifiers(settings),
        labels=reason_labels(runtime.settings.prompts_dir / "questionnaire.vi.yaml"),
    )


@app.task(name="analysis.raise_alert")
def raise_alert(response_id: int) -> dict[str, Any]:
    """Alert the agency about one answer if it is "not satisfied" (call after the answer is committed).

    An id that names no answer is a mistake of whoever queued the task, not a failure to retry: it is
    logged and the task returns an empty report (there is nothing to alert, now or later).
    """
    ctx = _context()
    try:
        wanted = int(response_id)
    except (TypeError, ValueError):
        wanted = 0
    if not 1 <= wanted <= _MAX_ID or not _response_exists(ctx, wanted):
        log.warning("analysis.raise_alert: survey response %r does not exist; no alert raised", response_id)
        return asdict(DeliveryReport())
    return asdict(raise_and_deliver(ctx, response_id=wanted))


def _response_exists(ctx: AlertContext, response_id: int) -> bool:
    with session_scope(ctx.sessions) as session:
        found = session.scalar(select(SurveyResponse.id).where(SurveyResponse.id == response_id))
    return found is not None


@app.task(name="analysis.send_alerts")
def send_alerts() -> dict[str, Any]:
    """The periodic sweep: alert unsatisfied answers nobody raised, retry due alerts, send digests."""
    return asdict(sweep(_context()))


@app.task(name="analysis.detect_anomalies")
def detect_anomalies(period: str | None = None) -> int:
    """Flag bursts, repeated phones and staff phones for a period (default: this month and the last).

    The previous month is scanned too: a burst after the last hourly run of a month, or last month's
    answers imported in the new month, would otherwise never be checked. Flags are stored once each
    (unique kind, agency and key), so scanning a month again adds only what is new.
    """
    ctx = _context()
    now = ctx.clock.now()
    if period:
        chosen = [Period.parse(period)]
    else:
        current = Period.containing(now, PeriodKind.MONTH)
        chosen = [current.previous(), current]
    with session_scope(ctx.sessions) as session:
        return sum(len(integrity.detect_anomalies(session, period=p, now=now)) for p in chosen)
