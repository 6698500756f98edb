"""Celery tasks of the campaign domain.

``campaign.tick`` starts scheduled campaigns whose start time came and completes campaigns past their
end. It is idempotent (every change is a compare-and-set on the campaign's status), so an overlapping
beat run or a redelivery after ``acks_late`` changes nothing twice.
"""

from __future__ import annotations

from functools import lru_cache

from callcenter.campaign import service
from callcenter.celery_app import app
from callcenter.core.db import session_scope
from callcenter.core.runtime import Runtime, build_runtime


@lru_cache(maxsize=1)
def _runtime() -> Runtime:
    """Built on the first task a worker runs (never at import), then reused by the process."""
    return build_runtime()


@app.task(name="campaign.tick")
def tick() -> dict[str, int]:
    """Start scheduled campaigns whose time came; complete running or paused ones past their end."""
    runtime = _runtime()
    with session_scope(runtime.sessions) as session:
        return service.tick(session, now=runtime.clock.now())
