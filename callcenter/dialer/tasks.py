"""Dialer Celery tasks: thin wrappers over :mod:`callcenter.dialer.dispatch`.

* ``dialer.release_due`` (beat, every second, queue ``dialer_control``): releases due targets;
* ``dialer.place_call(attempt_id)`` (queue ``dialer``): claims one attempt and hands it to a trunk;
* ``dialer.reap`` (beat, every few seconds, queue ``dialer_control``): settles stuck attempts.

Tasks take ids, re-read rows and are idempotent, so ``acks_late`` (set globally) is safe: a task
redelivered after a worker died finds its attempt already claimed and does nothing. No task ever
waits in a countdown: due times live in ``call_targets.next_attempt_at``.
"""

from __future__ import annotations

from dataclasses import asdict
from functools import partial
from typing import Any

from kombu import Producer

from callcenter.celery_app import app, worker_runtime
from callcenter.dialer import dispatch
from callcenter.dialer.context import DialerContext, build_dialer_context
from callcenter.dialer.settings import get_dialer_settings

_context: DialerContext | None = None


def dialer_context() -> DialerContext:
    """The process's dialer context, built on first use from the worker's Runtime."""
    global _context
    if _context is None:
        _context = build_dialer_context(worker_runtime(), get_dialer_settings())
    return _context


def _send_place_call(attempt_id: int, producer: Producer | None = None) -> None:
    place_call.apply_async((attempt_id,), queue="dialer", producer=producer)


@app.task(name="dialer.release_due", ignore_result=True)
def release_due() -> int:
    """Release due targets as attempts and fan out one ``dialer.place_call`` per attempt."""
    # One producer (and broker connection) for the whole fan-out, not one taken from the pool per task.
    with app.producer_or_acquire() as producer:
        return dispatch.release_due(dialer_context(), partial(_send_place_call, producer=producer))


@app.task(name="dialer.place_call", ignore_result=True, acks_late=True)
def place_call(attempt_id: int) -> str:
    """Claim attempt ``attempt_id`` by CAS and hand it to its trunk (idempotent)."""
    return dispatch.place_call(dialer_context(), int(attempt_id))


@app.task(name="dialer.reap", ignore_result=True)
def reap() -> dict[str, Any]:
    """Settle attempts stuck in queued/claimed/dialing/ringing/in_survey past their timeouts."""
    return asdict(dispatch.reap(dialer_context(), _send_place_call))
