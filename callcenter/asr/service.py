"""The speech-recognition interface every engine implements, the data it returns, and comment transcription.

Engines live in ``callcenter/asr/adapters/``; :func:`build_recognizer` (in ``engines.py``) picks one
from settings. Audio in is 16-bit little-endian mono PCM at any rate; engines resample as they need.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.orm import Session

from callcenter.asr.adapters.comment_store import (
    CLASSIFIER_SOURCE,
    COMMENT_DONE,
    COMMENT_FAILED,
    COMMENT_PENDING,
    add_reasons,
    finish_comment,
    get_comment_job,
)
from callcenter.asr.adapters.recordings import RecordingMissing, RecordingNotReady
from callcenter.asr.classify import classify_comment
from callcenter.asr.errors import AudioError, RecognitionFailed
from callcenter.core.errors import NotFound
from callcenter.core.pii import PiiCipher

log = logging.getLogger(__name__)

# How long after a comment was recorded a 404 for its Twilio recording means "not processed yet"
# (Twilio post-processes recordings before serving them): the comment stays pending and the minute
# sweep (asr.transcribe_pending) tries again. After this a 404 is permanent: the comment fails.
RECORDING_READY_GRACE_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class Word:
    word: str
    confidence: float
    start: float = 0.0
    end: float = 0.0


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    confidence: float  # 0..1, the engine's own (mean word confidence when it gives per-word ones)
    words: tuple[Word, ...] = field(default_factory=tuple)
    engine: str = ""


class Recognizer(Protocol):
    """A speech engine. ``phrases`` restricts recognition to a grammar (plus an unknown token)."""

    name: str
    sample_rate: int

    def transcribe(
        self, pcm16: bytes, sample_rate: int, *, phrases: Sequence[str] | None = None
    ) -> Transcript:
        """Recognise one utterance of 16-bit mono PCM at ``sample_rate`` Hz."""
        ...


# --- transcribing a recorded comment ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommentResult:
    """What one transcription run did to a response."""

    response_id: int
    status: str  # done | failed | skipped | pending (recording not ready yet: left for the sweep)
    reasons_added: tuple[int, ...] = ()
    detail: str = ""


def transcribe_comment(
    session: Session,
    *,
    response_id: int,
    recognizer: Recognizer,
    load_audio: Callable[[str], tuple[bytes, int]],
    cipher: PiiCipher,
    reason_codes: Sequence[int] = range(1, 10),
    now: datetime | None = None,
    ready_grace_seconds: float = RECORDING_READY_GRACE_SECONDS,
) -> CommentResult:
    """Transcribe a response's recorded comment, store it encrypted, add the reasons it speaks of.

    Idempotent: a response already ``done`` is skipped, and the transcript is written by
    compare-and-set on ``comment_status`` so two runs never both write. A missing or unreadable
    recording, or an engine failure, marks the comment ``failed`` (permanent; logged with the
    response id) — except a Twilio recording answering 404 less than ``ready_grace_seconds`` after
    the comment was recorded (``now`` defaults to the current time): Twilio has not processed it
    yet, so nothing is written, the comment stays ``pending`` and the sweep tries again (its
    interval paces the retries). Reasons come from :func:`classify_comment` only for unsatisfied
    answers (a satisfied citizen's comment is kept, not turned into reasons), with source
    "classifier", and never replace a reason the citizen keyed in. Does not commit.
    """
    job = get_comment_job(session, response_id=response_id)
    if job is None:
        raise NotFound(f"survey response {response_id} does not exist")
    if job.comment_status == COMMENT_DONE:
        return CommentResult(response_id, "skipped", detail="already transcribed")
    if not job.recording_ref:
        return CommentResult(response_id, "skipped", detail="no recording")
    open_states = (COMMENT_PENDING, COMMENT_FAILED, "none")
    try:
        pcm16, rate = load_audio(job.recording_ref)
        transcript = recognizer.transcribe(pcm16, rate)
    except (RecordingMissing, AudioError, RecognitionFailed) as exc:
        if isinstance(exc, RecordingNotReady):
            age = ((now or datetime.now(UTC)) - job.recorded_at).total_seconds()
            if age < ready_grace_seconds:
                log.info(
                    "comment of survey response %s left pending: %s %.0f s after it was recorded "
                    "(Twilio may still be processing it; waiting up to %.0f s)",
                    response_id, exc, age, ready_grace_seconds,
                )  # fmt: skip
                return CommentResult(response_id, COMMENT_PENDING, detail=f"{exc}; not ready yet")
        log.error("comment of survey response %s not transcribed: %s", response_id, exc)
        finish_comment(
            session, response_id=response_id, comment_enc=None, status=COMMENT_FAILED, expected=open_states
        )
        return CommentResult(response_id, "failed", detail=str(exc))
    text = transcript.text.strip()
    if not finish_comment(
        session,
        response_id=response_id,
        comment_enc=cipher.encrypt_optional(text),
        status=COMMENT_DONE,
        expected=open_states,
    ):
        return CommentResult(response_id, "skipped", detail="transcribed by another run")
    added: list[int] = []
    if text and job.satisfied is False:
        codes = [hit.code for hit in classify_comment(text) if hit.code in reason_codes]
        added = add_reasons(session, response_id=response_id, codes=codes, source=CLASSIFIER_SOURCE)
    detail = "no speech heard" if not text else f"{len(text.split())} words via {transcript.engine}"
    return CommentResult(response_id, "done", tuple(added), detail)
