"""Intake Celery tasks: the periodic one-stop API sync.

``intake.sync_api`` is idempotent (the upsert skips unchanged records, the watermark only moves
forward) and commits once, at the end of the task. Beat runs it every
``CALLCENTER_INTAKE_SYNC_INTERVAL_SECONDS``; a run that finds the previous one still going skips
instead of piling up (a non-blocking Redis lock per source).
"""

from __future__ import annotations

import logging

import redis

from callcenter.celery_app import app
from callcenter.core.runtime import Runtime, build_runtime
from callcenter.intake.errors import ApiAuthError, ApiError, MappingError
from callcenter.intake.settings import IntakeSettings
from callcenter.intake.sync import run_api_sync

log = logging.getLogger(__name__)

# Built on first use in each worker process, never at import time.
_RUNTIME: Runtime | None = None
LOCK_TIMEOUT_SECONDS = 3000  # below the broker's visibility timeout (celeryconfig)


def get_runtime() -> Runtime:
    global _RUNTIME
    if _RUNTIME is None:
        _RUNTIME = build_runtime()
    return _RUNTIME


@app.task(name="intake.sync_api", acks_late=True, ignore_result=False)
def sync_api_task(source: str | None = None) -> dict[str, object]:
    """Pull dossiers updated since the watermark from the one-stop API; skip if a sync is running.

    Permanent problems (refused token, bad mapping, unusable answers) are logged and reported in
    the result, not retried: the next beat run tries again after an operator fixed them. Transient
    ones were already retried inside the client (tenacity) and propagate as failures.
    """
    runtime = get_runtime()
    settings = IntakeSettings() if source is None else IntakeSettings(source=source)
    client = redis.Redis.from_url(runtime.settings.redis_url)
    lock = client.lock(f"callcenter:intake:sync:{settings.source}", timeout=LOCK_TIMEOUT_SECONDS)
    if not lock.acquire(blocking=False):
        log.info("intake sync of %s already running; skipped", settings.source)
        return {"source": settings.source, "skipped": True}
    try:
        result = run_api_sync(runtime, settings=settings)
    except (ApiAuthError, ApiError, MappingError) as exc:
        log.error("intake sync of %s failed: %s", settings.source, exc)
        return {"source": settings.source, "error": str(exc)}
    finally:
        lock.release()
    counts = result.counts
    return {
        "source": settings.source,
        "import_run_id": result.run.id,
        "inserted": counts.inserted,
        "updated": counts.updated,
        "unchanged": counts.unchanged,
        "quarantined": counts.quarantined,
    }
