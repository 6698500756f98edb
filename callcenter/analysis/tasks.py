"""Celery tasks of the analysis domain: alerts within seconds, the periodic sweep, anomaly detection.

Tasks take ids, re-read their rows and are idempotent (alerts are unique per answer and subscriber and
change state by compare-and-set; anomalies are unique per kind, agency and key), so ``acks_late`` and
an overlapping beat run are safe.
"""

from __future__ import annotations

from dataclasses import asdict
from functools import lru_cache
from typing import Any

from callcenter.analysis import integrity
from callcenter.analysis.delivery import AlertContext, build_notifiers, raise_and_deliver, sweep
from callcenter.analysis.labels import reason_labels
from callcenter.analysis.periods import Period, PeriodKind
from callcenter.analysis.settings import get_analysis_settings
from callcenter.celery_app import app
from callcenter.core.db import session_scope
from callcenter.core.runtime import build_runtime


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
    """Alert the agency about one answer if it is "not satisfied" (call after the answer is committed)."""
    return asdict(raise_and_deliver(_context(), response_id=int(response_id)))


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
