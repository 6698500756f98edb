"""Speech Celery tasks (queue ``asr``): transcribe recorded comments off the call's path.

``asr.transcribe_comment`` takes a ``survey_responses`` id, re-reads the row and is idempotent
(compare-and-set on ``comment_status``), so ``acks_late`` redelivery is harmless.
``asr.transcribe_pending`` is the beat sweep that picks up comments whose task was never sent or
was lost; overlapping sweeps skip (a non-blocking Redis lock). The engine is built once per worker
process, on first use, from ``AsrSettings``.
"""

from __future__ import annotations

import logging

import redis

from callcenter.asr.adapters.comment_store import pending_comment_ids
from callcenter.asr.adapters.recordings import RecordingLoader
from callcenter.asr.engines import build_recognizer
from callcenter.asr.errors import RecognizerUnavailable
from callcenter.asr.service import CommentResult, Recognizer, transcribe_comment
from callcenter.asr.settings import AsrSettings
from callcenter.celery_app import app
from callcenter.core.db import session_scope
from callcenter.core.errors import TransientError
from callcenter.core.runtime import Runtime, build_runtime
from callcenter.core.sealed_audio import sealer_from_settings

log = logging.getLogger(__name__)

SWEEP_LOCK_SECONDS = 3000  # below the broker's visibility timeout (celeryconfig)


class _Worker:
    """What one worker process builds once: runtime, speech settings, engine, recording loader."""

    def __init__(self) -> None:
        self.runtime: Runtime = build_runtime()
        self.settings = AsrSettings()
        self.recognizer: Recognizer | None = build_recognizer(self.settings)
        self.load_audio = RecordingLoader(
            recordings_dir=self.settings.recordings_dir,
            http_auth=self.settings.twilio_auth,
            sealer=sealer_from_settings(self.runtime.settings),
        )


_WORKER: _Worker | None = None


def _worker() -> _Worker:
    global _WORKER
    if _WORKER is None:
        _WORKER = _Worker()
    return _WORKER


def _run_one(worker: _Worker, response_id: int) -> CommentResult:
    if worker.recognizer is None:
        # Keys-only deployment: leave the comment pending for a worker that has an engine.
        return CommentResult(response_id, "skipped", detail="no speech engine configured")
    with session_scope(worker.runtime.sessions) as session:
        return transcribe_comment(
            session,
            response_id=response_id,
            recognizer=worker.recognizer,
            load_audio=worker.load_audio,
            cipher=worker.runtime.cipher,
        )


def _as_dict(result: CommentResult) -> dict[str, object]:
    return {
        "response_id": result.response_id,
        "status": result.status,
        "reasons_added": list(result.reasons_added),
        "detail": result.detail,
    }


@app.task(
    name="asr.transcribe_comment",
    acks_late=True,
    ignore_result=False,
    autoretry_for=(TransientError, RecognizerUnavailable),
    retry_backoff=5,
    retry_backoff_max=60,
    max_retries=5,
)
def transcribe_comment_task(response_id: int) -> dict[str, object]:
    """Transcribe and classify the recorded comment of one survey response (idempotent)."""
    result = _run_one(_worker(), int(response_id))
    log.info("comment of response %s: %s (%s)", response_id, result.status, result.detail)
    return _as_dict(result)


@app.task(name="asr.transcribe_pending", acks_late=True, ignore_result=False)
def transcribe_pending_task(limit: int | None = None) -> dict[str, object]:
    """Transcribe the oldest pending comments; skip when another sweep is running."""
    worker = _worker()
    client = redis.Redis.from_url(worker.runtime.settings.redis_url)
    lock = client.lock("callcenter:asr:sweep", timeout=SWEEP_LOCK_SECONDS)
    if not lock.acquire(blocking=False):
        return {"skipped": True}
    try:
        with session_scope(worker.runtime.sessions) as session:
            ids = pending_comment_ids(session, limit=limit or worker.settings.sweep_batch)
        results = [_run_one(worker, response_id) for response_id in ids]
    finally:
        lock.release()
    return {"processed": [_as_dict(r) for r in results]}
