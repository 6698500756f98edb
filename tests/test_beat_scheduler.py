"""Beat sleeps until its next entry is due instead of spinning through the last 10 ms (Celery's)."""

from __future__ import annotations

import time
from pathlib import Path

from celery import Celery
from celery.beat import PersistentScheduler
from celery.utils.imports import symbol_by_name

from callcenter.beat_scheduler import NoSpinScheduler
from callcenter.celery_app import app as callcenter_app


def _ticks_and_sends(scheduler_class: type[PersistentScheduler], tmp_path_name: str) -> tuple[int, int]:
    """Run the scheduler as ``celery beat`` does for 1.5 s, an entry due every 0.1 s."""
    app = Celery("beat-probe", broker="memory://", set_as_current=False)
    app.conf.beat_schedule = {"probe": {"task": "probe.noop", "schedule": 0.1}}
    scheduler = scheduler_class(app=app, schedule_filename=tmp_path_name)
    ticks = 0
    deadline = time.monotonic() + 1.5
    try:
        while (left := deadline - time.monotonic()) > 0:
            interval = scheduler.tick()
            ticks += 1
            if interval and interval > 0:
                time.sleep(min(interval, left))
        return ticks, scheduler.schedule["probe"].total_run_count
    finally:
        scheduler.close()


def test_beat_sends_every_entry_on_time_without_spinning(tmp_path: Path) -> None:
    ticks, sends = _ticks_and_sends(NoSpinScheduler, f"{tmp_path}/nospin")
    assert 13 <= sends <= 16  # one every 0.1 s, none missed
    assert ticks <= 3 * sends + 5  # a sleep, a send and the first check: no spin
    celery_ticks, celery_sends = _ticks_and_sends(PersistentScheduler, f"{tmp_path}/celery")
    assert 13 <= celery_sends <= 16 and celery_ticks > 5 * ticks  # Celery's own spins for 10 ms each time


def test_the_callcenter_beat_uses_it() -> None:
    assert symbol_by_name(callcenter_app.conf.beat_scheduler) is NoSpinScheduler
