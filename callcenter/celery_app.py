"""The Celery application (a composition root). Configuration lives in the top-level ``celeryconfig``.

Each worker *process* builds one :class:`~callcenter.core.runtime.Runtime` after the fork
(``worker_process_init``): database engines and connection pools must never be shared across a
fork. Tasks get it through :func:`worker_runtime`.

Run (see docs/dialer.md)::

    callcenter worker            # = celery -A callcenter.celery_app worker -Q dialer,dialer_control,...
    callcenter beat              # = celery -A callcenter.celery_app beat
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import setup_logging, worker_process_init

from callcenter.core.logging import configure_logging
from callcenter.core.runtime import Runtime, build_runtime

app = Celery("callcenter")
app.config_from_object("celeryconfig")

_runtime: Runtime | None = None


@setup_logging.connect
def _setup_logging(loglevel: str | int | None = None, **_: Any) -> None:
    """Our logging, not Celery's: Celery would replace the root handlers with its own, unmasked ones
    (and a solo worker never runs ``worker_process_init``). Connected, Celery leaves logging alone."""
    configure_logging(loglevel or "INFO")


@worker_process_init.connect
def _build_worker_runtime(**_: Any) -> None:
    global _runtime
    configure_logging(None)  # set up in the parent already (setup_logging); keep its level
    _runtime = build_runtime()


def worker_runtime() -> Runtime:
    """This worker process's Runtime (built lazily for the solo pool and eager runs)."""
    global _runtime
    if _runtime is None:
        _runtime = build_runtime()
    return _runtime
