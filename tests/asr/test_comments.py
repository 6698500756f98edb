"""Comment transcription: recording → engine → encrypted transcript → classifier reasons.

The service runs on SQLite and PostgreSQL (``db_session``) with the real viet-asr engine; the
Celery task runs in a real worker process against PostgreSQL and Redis.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from callcenter.asr.adapters.comment_store import finish_comment, pending_comment_ids
from callcenter.asr.adapters.recordings import RecordingLoader, RecordingMissing, RecordingNotReady
from callcenter.asr.adapters.viet_asr_engine import VietAsrRecognizer
from callcenter.asr.service import RECORDING_READY_GRACE_SECONDS, transcribe_comment
from callcenter.core.errors import NotFound
from callcenter.core.pii import PiiCipher
from callcenter.core.sealed_audio import AudioSealer
from callcenter.intake.models import Agency
from callcenter.ivr.models import ResponseReason, SurveyResponse

ROOT = Path(__file__).resolve().parents[2]


def _response(
    session: Session,
    *,
    recording_ref: str | None,
    satisfied: bool | None = False,
    keyed: tuple[int, ...] = (),
) -> SurveyResponse:
    agency = Agency(code=f"UB-{uuid.uuid4().hex[:8]}", name="UBND phường Hải Châu")
    session.add(agency)
    session.flush()
    row = SurveyResponse(
        channel="call",
        attempt_id=uuid.uuid4().int % 10**12,
        agency_id=agency.id,
        questionnaire_version="test-1",
        status="completed",
        satisfied=satisfied,
        answered_via="dtmf",
        recording_ref=recording_ref,
        comment_status="pending" if recording_ref else "none",
        started_at=datetime.now(UTC),
    )
    session.add(row)
    session.flush()
    for code in keyed:
        session.add(ResponseReason(response_id=row.id, reason_code=code, source="dtmf"))
    session.flush()
    return row


def _reasons(session: Session, response_id: int) -> dict[int, str]:
    rows = session.execute(
        select(ResponseReason.reason_code, ResponseReason.source).where(
            ResponseReason.response_id == response_id
        )
    )
    return {code: source for code, source in rows}


def _status(session: Session, response_id: int) -> tuple[str, bytes | None]:
    row = session.execute(
        select(SurveyResponse.comment_status, SurveyResponse.comment_enc).where(
            SurveyResponse.id == response_id
        )
    ).one()
    return row[0], row[1]


def test_comment_is_transcribed_encrypted_and_classified(
    db_session: Session, viet_asr: VietAsrRecognizer, cipher: PiiCipher, asr_data: Path
) -> None:
    clip = asr_data / "vi_comment_8k.wav"  # espeak-ng: "Tôi phải đi lại nhiều lần, chờ đợi rất lâu."
    row = _response(db_session, recording_ref=str(clip), keyed=(9,))
    result = transcribe_comment(
        db_session, response_id=row.id, recognizer=viet_asr, load_audio=RecordingLoader(), cipher=cipher
    )
    assert result.status == "done"
    assert 3 in result.reasons_added
    status, enc = _status(db_session, row.id)
    assert status == "done"
    assert enc is not None and b"nhi" not in enc  # stored encrypted
    assert "đi lại" in cipher.decrypt(enc)
    reasons = _reasons(db_session, row.id)
    assert reasons[9] == "dtmf"  # the citizen's key keeps its source
    assert reasons[3] == "classifier"
    # Idempotent: a second run (a redelivered task) changes nothing.
    again = transcribe_comment(
        db_session, response_id=row.id, recognizer=viet_asr, load_audio=RecordingLoader(), cipher=cipher
    )
    assert again.status == "skipped" and _reasons(db_session, row.id) == reasons


def test_satisfied_comment_is_kept_without_reasons(
    db_session: Session, viet_asr: VietAsrRecognizer, cipher: PiiCipher, asr_data: Path
) -> None:
    row = _response(db_session, recording_ref=str(asr_data / "vi_comment_8k.wav"), satisfied=True)
    result = transcribe_comment(
        db_session, response_id=row.id, recognizer=viet_asr, load_audio=RecordingLoader(), cipher=cipher
    )
    assert result.status == "done" and result.reasons_added == ()
    assert _reasons(db_session, row.id) == {}


def test_missing_recording_marks_failed_and_names_it(
    db_session: Session, viet_asr: VietAsrRecognizer, cipher: PiiCipher, tmp_path: Path
) -> None:
    row = _response(db_session, recording_ref=str(tmp_path / "attempt-7-comment1.wav"))
    result = transcribe_comment(
        db_session, response_id=row.id, recognizer=viet_asr, load_audio=RecordingLoader(), cipher=cipher
    )
    assert result.status == "failed"
    assert "attempt-7-comment1.wav does not exist" in result.detail
    assert _status(db_session, row.id) == ("failed", None)


def test_no_recording_and_unknown_response(
    db_session: Session, viet_asr: VietAsrRecognizer, cipher: PiiCipher
) -> None:
    row = _response(db_session, recording_ref=None)
    result = transcribe_comment(
        db_session, response_id=row.id, recognizer=viet_asr, load_audio=RecordingLoader(), cipher=cipher
    )
    assert result.status == "skipped" and result.detail == "no recording"
    with pytest.raises(NotFound, match="survey response 987654321"):
        transcribe_comment(
            db_session,
            response_id=987654321,
            recognizer=viet_asr,
            load_audio=RecordingLoader(),
            cipher=cipher,
        )


def test_transcript_written_by_compare_and_set(
    db_session: Session, cipher: PiiCipher, asr_data: Path
) -> None:
    row = _response(db_session, recording_ref=str(asr_data / "vi_comment_8k.wav"))
    db_session.execute(
        update(SurveyResponse).where(SurveyResponse.id == row.id).values(comment_status="done")
    )
    written = finish_comment(
        db_session, response_id=row.id, comment_enc=cipher.encrypt("x"), status="done", expected=("pending",)
    )
    assert written is False
    assert _status(db_session, row.id) == ("done", None)


# --- recordings --------------------------------------------------------------------------------


def test_relative_refs_resolve_under_the_recordings_dir(asr_data: Path) -> None:
    pcm, rate = RecordingLoader(recordings_dir=asr_data)("vi_comment_8k.wav")
    assert rate == 8000 and len(pcm) > 8000
    with pytest.raises(RecordingMissing, match="CALLCENTER_ASR_RECORDINGS_DIR is not set"):
        RecordingLoader()("vi_comment_8k.wav")


@contextmanager
def _media_server(wav: bytes, status: Callable[[str, str], int]) -> Iterator[str]:
    """A real HTTP server standing in for Twilio's media URL: ``status(path, authorization)`` decides
    each answer (200 sends the WAV). Yields the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = status(self.path, self.headers.get("Authorization", ""))
            self.send_response(code)
            if code == 200:
                self.send_header("Content-Type", "audio/x-wav")
                self.send_header("Content-Length", str(len(wav)))
            self.end_headers()
            if code == 200:
                self.wfile.write(wav)

        def log_message(self, *args: object) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def recording_server(asr_data: Path) -> Iterator[tuple[str, list[str]]]:
    """Twilio with basic auth: one 503 first, then the WAV; 404 for anything else."""
    seen: list[str] = []

    def status(path: str, authorization: str) -> int:
        seen.append(f"{path} {authorization.split(' ')[0]}")
        if not path.endswith(".wav") or "missing" in path:
            return 404
        return 503 if len(seen) == 1 else 200

    with _media_server((asr_data / "vi_comment_8k.wav").read_bytes(), status) as base:
        yield base, seen


def test_twilio_url_downloaded_with_auth_and_retry(recording_server: tuple[str, list[str]]) -> None:
    base, seen = recording_server
    loader = RecordingLoader(http_auth=("AC123", "secret"))
    pcm, rate = loader(f"{base}/2010-04-01/Accounts/AC123/Recordings/RE1")
    assert rate == 8000 and len(pcm) > 8000
    assert seen == ["/2010-04-01/Accounts/AC123/Recordings/RE1.wav Basic"] * 2  # 503, then 200
    with pytest.raises(RecordingMissing, match="HTTP 404"):
        loader(f"{base}/missing")


@pytest.fixture
def twilio_media(asr_data: Path) -> Iterator[tuple[str, list[str], dict[str, bool]]]:
    """Twilio's media URL while it post-processes a recording: 404 until the recording is "ready"."""
    seen: list[str] = []
    state = {"ready": False}

    def status(path: str, _authorization: str) -> int:
        seen.append(path)
        return 200 if state["ready"] else 404

    with _media_server((asr_data / "vi_comment_8k.wav").read_bytes(), status) as base:
        yield base, seen, state


def _recorded(session: Session, response_id: int, *, started: datetime, completed: datetime) -> None:
    session.execute(
        update(SurveyResponse)
        .where(SurveyResponse.id == response_id)
        .values(started_at=started, completed_at=completed)
    )


def test_twilio_recording_not_ready_stays_pending_until_a_later_sweep(
    db_session: Session,
    viet_asr: VietAsrRecognizer,
    cipher: PiiCipher,
    twilio_media: tuple[str, list[str], dict[str, bool]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Twilio answers 404 while it post-processes a recording: not a failure within the grace period."""
    base, seen, state = twilio_media
    row = _response(db_session, recording_ref=f"{base}/2010-04-01/Accounts/AC123/Recordings/RE7", keyed=(9,))
    # A long call: the grace period runs from the call's end (the recording), not from its start.
    ended = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)
    _recorded(db_session, row.id, started=ended - timedelta(hours=1), completed=ended)
    loader = RecordingLoader(http_auth=("AC123", "secret"))
    caplog.set_level("INFO", logger="callcenter.asr.service")
    early = transcribe_comment(
        db_session, response_id=row.id, recognizer=viet_asr, load_audio=loader, cipher=cipher,
        now=ended + timedelta(seconds=5),
    )  # fmt: skip
    assert early.status == "pending" and "RE7 answered HTTP 404" in early.detail
    assert _status(db_session, row.id) == ("pending", None)
    assert len(seen) == 1  # a 404 is not retried on the spot: the sweep's interval paces retries
    assert "AC123" not in early.detail and "AC123" not in caplog.text  # the recording SID only
    # The next sweep (one minute later) selects it again; by now Twilio serves the recording.
    assert row.id in pending_comment_ids(db_session, limit=1000)
    state["ready"] = True
    later = transcribe_comment(
        db_session, response_id=row.id, recognizer=viet_asr, load_audio=loader, cipher=cipher,
        now=ended + timedelta(seconds=65),
    )  # fmt: skip
    assert later.status == "done" and 3 in later.reasons_added
    status, enc = _status(db_session, row.id)
    assert status == "done" and enc is not None and "đi lại" in cipher.decrypt(enc)
    assert row.id not in pending_comment_ids(db_session, limit=1000)


def test_twilio_recording_still_missing_after_the_grace_period_fails(
    db_session: Session,
    viet_asr: VietAsrRecognizer,
    cipher: PiiCipher,
    twilio_media: tuple[str, list[str], dict[str, bool]],
) -> None:
    base, seen, _ = twilio_media
    row = _response(db_session, recording_ref=f"{base}/2010-04-01/Accounts/AC123/Recordings/RE8")
    ended = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)
    _recorded(db_session, row.id, started=ended - timedelta(minutes=3), completed=ended)
    result = transcribe_comment(
        db_session, response_id=row.id, recognizer=viet_asr,
        load_audio=RecordingLoader(http_auth=("AC123", "secret")), cipher=cipher,
        now=ended + timedelta(seconds=RECORDING_READY_GRACE_SECONDS + 1),
    )  # fmt: skip
    assert result.status == "failed" and "RE8 answered HTTP 404" in result.detail
    assert _status(db_session, row.id) == ("failed", None)
    assert row.id not in pending_comment_ids(db_session, limit=1000)
    assert len(seen) == 1
    with pytest.raises(RecordingNotReady):  # what the service tells apart from other failures
        RecordingLoader()(f"{base}/2010-04-01/Accounts/AC123/Recordings/RE8")


# --- the Celery task in a real worker --------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_task_runs_in_a_real_worker(
    pg_url: str, pg_engine: Engine, redis_url: str, asr_data: Path, tmp_path: Path
) -> None:
    queue = f"asr-test-{uuid.uuid4().hex[:8]}"
    with Session(pg_engine) as session:
        row = _response(session, recording_ref=str(asr_data / "vi_comment_8k.wav"))
        response_id = row.id
        agency_id = row.agency_id
        session.commit()
    env = {
        **os.environ,
        "CALLCENTER_DATABASE_URL": pg_url,
        "CALLCENTER_BROKER_URL": redis_url,
        "CALLCENTER_ASR_ENGINE": "viet-asr",
    }
    log_path = tmp_path / "worker.log"
    log_file = log_path.open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "callcenter.celery_app", "worker", "-Q", queue, "-P", "solo",
         "-n", f"{queue}@%h", "--without-heartbeat", "--without-mingle", "--without-gossip", "-l", "WARNING"],
        cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
    )  # fmt: skip
    client = Celery("asr-test", broker=redis_url)
    try:
        client.send_task("asr.transcribe_comment", args=[response_id], queue=queue)
        deadline = time.monotonic() + 120
        status = "pending"
        while time.monotonic() < deadline and status == "pending":
            time.sleep(0.5)
            with Session(pg_engine) as session:
                status = _status(session, response_id)[0]
            assert worker.poll() is None, log_path.read_text(errors="replace")
        assert status == "done", log_path.read_text(errors="replace")
        with Session(pg_engine) as session:
            assert _reasons(session, response_id).get(3) == "classifier"
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log_file.close()
        client.close()
        with Session(pg_engine) as session:
            session.execute(SurveyResponse.__table__.delete().where(SurveyResponse.id == response_id))
            session.execute(Agency.__table__.delete().where(Agency.id == agency_id))
            session.commit()


def test_sealed_comment_is_opened_in_memory_and_transcribed(
    db_session: Session, viet_asr: VietAsrRecognizer, cipher: PiiCipher, asr_data: Path, tmp_path: Path
) -> None:
    """The AGI server seals comment recordings; the worker decrypts them without writing clear audio."""
    sealer = AudioSealer(b"k" * 32)
    clear = tmp_path / "attempt-8-comment1.wav"
    clear.write_bytes((asr_data / "vi_comment_8k.wav").read_bytes())
    sealed = sealer.seal(clear)
    before = sorted(p.name for p in tmp_path.iterdir())
    row = _response(db_session, recording_ref=str(sealed), keyed=(9,))
    loader = RecordingLoader(sealer=sealer)
    result = transcribe_comment(
        db_session, response_id=row.id, recognizer=viet_asr, load_audio=loader, cipher=cipher
    )
    assert result.status == "done" and 3 in result.reasons_added
    assert before == ["attempt-8-comment1.wav.enc"] == sorted(p.name for p in tmp_path.iterdir())
    # Without the key, or with another one, the recording cannot be read: failed, and it says why.
    other = _response(db_session, recording_ref=str(sealed), keyed=(9,))
    failed = transcribe_comment(
        db_session,
        response_id=other.id,
        recognizer=viet_asr,
        load_audio=RecordingLoader(sealer=AudioSealer(b"x" * 32)),
        cipher=cipher,
    )
    assert failed.status == "failed" and "attempt-8-comment1.wav.enc cannot be opened" in failed.detail
