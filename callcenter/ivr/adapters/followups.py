"""What happens right after a survey ends: the alert and the transcription are queued at once.

The AGI server knows the moment a citizen finished (or hung up): an unsatisfied answer goes to
``analysis.raise_alert`` and a recorded comment to ``asr.transcribe_comment`` straight away, so the
agency hears of it within seconds of the call rather than at the next sweep. The tasks are sent by
name (the IVR does not import the analysis or speech domains) and are idempotent; if the broker
cannot be reached the call is not affected and the periodic sweeps (``analysis.send_alerts``,
``asr.transcribe_pending``) pick the answer up instead — the log says so.
"""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger(__name__)

RAISE_ALERT = "analysis.raise_alert"
TRANSCRIBE_COMMENT = "asr.transcribe_comment"


class TaskSender(Protocol):
    def send_task(self, name: str, args: tuple[object, ...], queue: str) -> object: ...


class SurveyFollowUps:
    """Queues the follow-up tasks of one finished survey (blocking: call it off the event loop)."""

    def __init__(self, sender: TaskSender) -> None:
        self.sender = sender
        self.sent = 0

    def survey_ended(self, response_id: int, *, unsatisfied: bool, has_recording: bool) -> list[str]:
        wanted = []
        if unsatisfied:
            wanted.append((RAISE_ALERT, "analysis"))
        if has_recording:
            wanted.append((TRANSCRIBE_COMMENT, "asr"))
        sent: list[str] = []
        for name, queue in wanted:
            try:
                self.sender.send_task(name, args=(response_id,), queue=queue)
            except Exception as exc:  # the broker is down: the sweep will do it
                log.warning(
                    "survey response %s: could not queue %s (%s); the periodic sweep will pick it up",
                    response_id,
                    name,
                    exc,
                )
                continue
            sent.append(name)
            self.sent += 1
        return sent


def celery_followups() -> SurveyFollowUps:
    """Follow-ups sent through the project's Celery app (broker from ``CALLCENTER_BROKER_URL``)."""
    from callcenter.celery_app import app

    return SurveyFollowUps(app)
