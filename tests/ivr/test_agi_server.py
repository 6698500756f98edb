"""The real ``callcenter agi-server`` process, driven over TCP by recorded Asterisk 22 citizens.

Each test starts from a recording in ../shared/fixtures/asterisk (what Asterisk really sent: the
environment block, the citizen's keys, silences, recordings and hang-ups, then HANGUP lines and
511 replies), plays it against the server with garbage lines and split TCP writes mixed in, and
checks what the server stored in PostgreSQL or SQLite.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
from sqlalchemy import Engine
from sqlalchemy import select as sql_select
from sqlalchemy.orm import Session

from callcenter.core.models import OptOut
from callcenter.core.outcomes import SurveyOutcome
from callcenter.core.pii import PiiCipher
from callcenter.core.sealed_audio import sealer_from_settings
from callcenter.core.settings import Settings
from callcenter.ivr import constants as c
from callcenter.ivr.adapters.audio import read_wav
from callcenter.ivr.agi import AGIProtocolError, AgiReply
from callcenter.ivr.agi_testing import (
    CitizenInput,
    FakeAsterisk,
    SessionStats,
    environment_chunks,
    load_recording,
    survey_variables,
)
from callcenter.ivr.agi_transport import AgiTransport
from callcenter.ivr.messages import Record, Utterance
from callcenter.ivr.models import SurveyResponse
from callcenter.ivr.service import survey_outcome_for_attempt
from tests.ivr.conftest import forget_opt_out, make_dossier

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# The agi-server process runs with CALLCENTER_ENV=test: the development PII key signs call tokens.
PII_KEY = Settings(env="test").pii_key_bytes


@dataclass
class RunningServer:
    port: int
    engine: Engine
    log: Path
    recordings: Path
    broker: str  # a Redis db of its own: the follow-up tasks the server queues land there

    def queued(self, queue: str) -> list[tuple[str, list[object]]]:
        """(task name, args) of each Celery message waiting in ``queue``."""
        client = redis.Redis.from_url(self.broker)
        try:
            messages = [json.loads(raw) for raw in client.lrange(queue, 0, -1)]
        finally:
            client.close()
        return [(m["headers"]["task"], json.loads(base64.b64decode(m["body"]))[0]) for m in messages]


@pytest.fixture(scope="module")
def ivr_var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ivr-var")


def _wait_ready(proc: subprocess.Popen[str], timeout: float = 60.0) -> int:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise AssertionError("agi-server did not start in time")
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        raise AssertionError(f"agi-server did not start: {line!r} (exit {proc.poll()})")
    return int(line.split()[1])


@pytest.fixture(scope="module", params=["sqlite", "pg"])
def agi_server(
    request: pytest.FixtureRequest,
    ivr_var_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    redis_url: str,
) -> Iterator[RunningServer]:
    url = request.getfixturevalue(f"{request.param}_url")
    engine = request.getfixturevalue(f"{request.param}_engine")
    work = tmp_path_factory.mktemp(f"agi-{request.param}")
    log = work / "server.log"
    recordings = work / "recordings"
    broker = redis_url.rsplit("/", 1)[0] + "/11"
    redis.Redis.from_url(broker).flushdb()
    env = os.environ | {
        "CALLCENTER_BROKER_URL": broker,
        "CALLCENTER_ENV": "test",
        "CALLCENTER_DATABASE_URL": url,
        "CALLCENTER_VAR_DIR": str(ivr_var_dir),
        "CALLCENTER_IVR_RECORDINGS_DIR": str(recordings),
        "CALLCENTER_IVR_GTTS_TIMEOUT_SECONDS": "0.5",
        "CALLCENTER_IVR_DRAIN_SECONDS": "5",
    }
    with log.open("w") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "callcenter",
                "agi-server",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-speech",
            ],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            cwd=ROOT,
            text=True,
        )
        try:
            port = _wait_ready(proc)
            yield RunningServer(port, engine, log, recordings, broker)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert proc.returncode == 0, text[-2000:]


_attempts = iter(range(700_000, 800_000))


def new_call(server: RunningServer, cipher: PiiCipher) -> tuple[int, int, str]:
    """A committed dossier (the server reads it from its own connection) and a fresh attempt id.

    Each call has its own phone: an opt-out committed here must not reach other tests' phones."""
    attempt_id = next(_attempts)
    with Session(server.engine) as session:
        dossier = make_dossier(
            session,
            cipher,
            phone=f"+8491{attempt_id % 10_000_000:07d}",
            agency_name="Ủy ban nhân dân quận Hải Châu",
            field_name="Đất đai",
        )
        session.commit()
        return dossier.id, attempt_id, dossier.phone_hash


def stored(server: RunningServer, attempt_id: int) -> tuple[SurveyResponse | None, SurveyOutcome]:
    with Session(server.engine) as session:
        row = session.execute(
            sql_select(SurveyResponse).where(SurveyResponse.attempt_id == attempt_id)
        ).scalar_one_or_none()
        if row is not None:
            _ = row.reasons  # load before the session closes
        return row, survey_outcome_for_attempt(session, attempt_id=attempt_id)


def play(server: RunningServer, fake: FakeAsterisk) -> SessionStats:
    return asyncio.run(asyncio.wait_for(fake.run("127.0.0.1", server.port), 120))


def recorded_citizen(
    shared_dir: Path, name: str, dossier_id: int, attempt_id: int, **kw: object
) -> FakeAsterisk:
    path = shared_dir / "fixtures" / "asterisk" / f"agi-{name}.jsonl"
    variables = survey_variables(attempt_id, dossier_id, pii_key=PII_KEY)
    return FakeAsterisk.from_recording(
        path, variables=variables, garbage=True, split_writes=True, seed=attempt_id, **kw
    )  # type: ignore[arg-type]


def verbs(stats: SessionStats) -> list[str]:
    return [" ".join(cmd.split(" ")[:2]) for cmd in stats.commands]


def test_full_survey_recorded_answer(
    agi_server: RunningServer, shared_dir: Path, cipher: PiiCipher, settings: Settings
) -> None:
    """2 (not satisfied), 4 (attitude), then a voice comment ended by #, sealed at rest."""
    dossier_id, attempt_id, phone_hash = new_call(agi_server, cipher)
    fake = recorded_citizen(shared_dir, "answer", dossier_id, attempt_id, write_recordings=True)
    stats = play(agi_server, fake)
    row, outcome = stored(agi_server, attempt_id)
    assert row is not None and outcome is SurveyOutcome.COMPLETED
    assert (row.status, row.satisfied, row.answered_via) == ("completed", False, "dtmf")
    assert [r.reason_code for r in row.reasons] == [4]
    assert (row.dossier_id, row.phone_hash, row.channel) == (dossier_id, phone_hash, "call")
    clear = agi_server.recordings / f"attempt-{attempt_id}-comment1.wav"
    assert row.recording_ref == f"{clear}.enc"
    assert not clear.exists(), "the clear recording must not stay on disk"
    sealed = Path(row.recording_ref).read_bytes()
    assert b"RIFF" not in sealed and b"WAVE" not in sealed
    audio = read_wav(sealer_from_settings(settings).open(row.recording_ref))
    assert (audio.rate, len(audio.samples)) == (8000, 6400)  # endpos=6400 in agi-answer.jsonl: intact
    assert row.comment_status == "pending" and row.completed_at is not None
    # The agency's alert and the comment's transcription were queued the moment the call ended.
    assert ("analysis.raise_alert", [row.id]) in agi_server.queued("analysis")
    assert ("asr.transcribe_comment", [row.id]) in agi_server.queued("asr")
    assert stats.commands[:3] == ["ANSWER", "GET VARIABLE ATTEMPT_ID", "GET VARIABLE DOSSIER_ID"]
    assert "RECORD FILE" in verbs(stats) and "GET DATA" in verbs(stats)
    record = next(cmd for cmd in stats.commands if cmd.startswith("RECORD FILE"))
    assert record.endswith('wav "#" 30000 0 BEEP s=3')
    assert fake.variables[c.VAR_SURVEY_END] == "completed"
    assert fake.variables[c.VAR_SURVEY_OUTCOME] == "completed"
    assert stats.closed_by_server and "HANGUP" not in stats.commands


class LinkDropsDuringRecording(FakeAsterisk):
    """Asterisk writes 1 s of the comment, then the FastAGI socket closes before RECORD FILE's reply
    (Asterisk restarted, the network dropped): no ``200 result=-1 (hangup)`` ever arrives."""

    dropped = False

    def reply_to(self, command: str) -> list[str]:
        if command.startswith("RECORD FILE"):
            path, fmt = command.split(" ")[2:4]
            self._write_recording(path, fmt, 8000)
            self.dropped = True
            return []
        return super().reply_to(command)

    async def _send(self, writer: asyncio.StreamWriter, lines: list[str]) -> None:
        if self.dropped:
            writer.close()
            return
        await super()._send(writer, lines)


def test_link_lost_during_the_recording_keeps_it_sealed(
    agi_server: RunningServer, shared_dir: Path, cipher: PiiCipher, settings: Settings
) -> None:
    """The comment Asterisk wrote is sealed and kept with the answers, never left in the clear."""
    dossier_id, attempt_id, _ = new_call(agi_server, cipher)
    path = shared_dir / "fixtures" / "asterisk" / "agi-answer.jsonl"
    variables = survey_variables(attempt_id, dossier_id, pii_key=PII_KEY)
    fake = LinkDropsDuringRecording.from_recording(path, variables=variables, write_recordings=True)
    stats = play(agi_server, fake)
    assert fake.dropped and stats.commands[-1].startswith("RECORD FILE")
    # The server learns of the closed link after we do and stores the end in its own time.
    deadline = time.monotonic() + 20
    while (row := stored(agi_server, attempt_id)[0]) is None or row.completed_at is None:
        assert time.monotonic() < deadline, "the server did not store the end of the call"
        time.sleep(0.1)
    assert row is not None and row.satisfied is False and [r.reason_code for r in row.reasons] == [4]
    clear = agi_server.recordings / f"attempt-{attempt_id}-comment1.wav"
    assert not clear.exists(), "the clear recording must not stay on disk"
    assert row.recording_ref == f"{clear}.enc"  # kept: its length, read from the file, is 1 s
    audio = read_wav(sealer_from_settings(settings).open(row.recording_ref))
    assert (audio.rate, len(audio.samples)) == (8000, 8000)


def test_hang_up_during_the_recording(agi_server: RunningServer, shared_dir: Path, cipher: PiiCipher) -> None:
    dossier_id, attempt_id, _ = new_call(agi_server, cipher)
    fake = recorded_citizen(shared_dir, "answer-comment-hangup", dossier_id, attempt_id)
    stats = play(agi_server, fake)
    row, outcome = stored(agi_server, attempt_id)
    assert row is not None and outcome is SurveyOutcome.COMPLETED
    assert row.satisfied is False and [r.reason_code for r in row.reasons] == [4]
    assert row.recording_ref is not None  # 1 s was recorded before the hang-up: kept
    # after the hang-up only dead-channel-safe commands were sent
    after = stats.commands[
        stats.commands.index(next(x for x in stats.commands if x.startswith("RECORD"))) + 1 :
    ]
    assert after and all(cmd.startswith("SET VARIABLE") for cmd in after)
    assert fake.variables[c.VAR_SURVEY_OUTCOME] == "completed"


def test_partial_answer_then_hang_up(agi_server: RunningServer, shared_dir: Path, cipher: PiiCipher) -> None:
    """The classic 2 then 4, then gone while the next question waits: the answers are kept."""
    dossier_id, attempt_id, _ = new_call(agi_server, cipher)
    stats = play(agi_server, recorded_citizen(shared_dir, "answer-partial", dossier_id, attempt_id))
    row, _ = stored(agi_server, attempt_id)
    assert row is not None and row.satisfied is False and [r.reason_code for r in row.reasons] == [4]
    assert row.status == "completed" and row.completed_at is not None
    # -1 on GET DATA: the server asked CHANNEL STATUS (got HANGUP + 511) and stopped there
    assert verbs(stats)[-4:] == ["GET DATA", "CHANNEL STATUS", "SET VARIABLE", "SET VARIABLE"]


def test_silent_citizen_ends_politely(agi_server: RunningServer, shared_dir: Path, cipher: PiiCipher) -> None:
    dossier_id, attempt_id, _ = new_call(agi_server, cipher)
    fake = recorded_citizen(shared_dir, "answered-silent", dossier_id, attempt_id)
    stats = play(agi_server, fake)
    row, outcome = stored(agi_server, attempt_id)
    assert row is not None and outcome is SurveyOutcome.NO_INPUT
    assert (row.status, row.satisfied, row.reasons) == ("partial", None, [])
    assert verbs(stats).count("GET DATA") == 3  # asked, re-prompted twice
    assert fake.variables[c.VAR_SURVEY_END] == "no_input"
    queued = agi_server.queued("analysis") + agi_server.queued("asr")
    assert not [args for _, args in queued if args == [row.id]]  # nothing to alert or transcribe


def test_hang_up_after_one_second(agi_server: RunningServer, shared_dir: Path, cipher: PiiCipher) -> None:
    dossier_id, attempt_id, _ = new_call(agi_server, cipher)
    fake = recorded_citizen(shared_dir, "hangup-after-1s", dossier_id, attempt_id)
    play(agi_server, fake)
    row, outcome = stored(agi_server, attempt_id)
    assert row is not None and row.status == "partial" and outcome is SurveyOutcome.NO_INPUT
    assert fake.variables[c.VAR_SURVEY_OUTCOME] == "no_input"


def test_barge_in_and_opt_out(agi_server: RunningServer, shared_dir: Path, cipher: PiiCipher) -> None:
    """Keys pressed during the greeting answer at once; 0 then 1 opts the phone out for good."""
    dossier_id, attempt_id, phone_hash = new_call(agi_server, cipher)
    _, records = load_recording(shared_dir / "fixtures" / "asterisk" / "agi-answer.jsonl")
    fake = FakeAsterisk(
        environment_chunks(records),
        [CitizenInput("digits", "0"), CitizenInput("digits", "1")],
        variables=survey_variables(attempt_id, dossier_id, pii_key=PII_KEY),
        barge_in=True,
    )
    stats = play(agi_server, fake)
    # 0 pressed during the greeting: the dossier sentence and the question are skipped
    assert verbs(stats)[:6] == ["ANSWER", *["GET VARIABLE"] * 3, "STREAM FILE", "GET DATA"]
    assert stats.commands[4].endswith('"0123456789*#"')
    row, outcome = stored(agi_server, attempt_id)
    assert row is not None and row.status == "opted_out" and outcome is SurveyOutcome.OPTED_OUT
    with Session(agi_server.engine) as session:
        entry = session.execute(sql_select(OptOut).where(OptOut.phone_hash == phone_hash)).scalar_one()
    assert entry.source == "ivr_key"
    forget_opt_out(agi_server.engine, phone_hash)


def test_missing_channel_variable_stores_nothing(agi_server: RunningServer, shared_dir: Path) -> None:
    _, records = load_recording(shared_dir / "fixtures" / "asterisk" / "agi-answer.jsonl")
    fake = FakeAsterisk(environment_chunks(records), [], variables={c.VAR_ATTEMPT_ID: "abc"})
    stats = play(agi_server, fake)
    assert fake.variables[c.VAR_SURVEY_END] == "error" and stats.closed_by_server
    assert "variable ATTEMPT_ID is not an id" in agi_server.log.read_text()


def test_unknown_dossier_is_refused(agi_server: RunningServer, shared_dir: Path) -> None:
    _, records = load_recording(shared_dir / "fixtures" / "asterisk" / "agi-answer.jsonl")
    attempt_id = next(_attempts)
    fake = FakeAsterisk(
        environment_chunks(records),
        [],
        variables=survey_variables(attempt_id, 99999999, pii_key=PII_KEY),
    )
    play(agi_server, fake)
    assert fake.variables[c.VAR_SURVEY_END] == "error"
    assert stored(agi_server, attempt_id) == (None, SurveyOutcome.NONE)


@pytest.mark.parametrize("forgery", ["missing", "another dossier", "another key"])
def test_a_call_the_dialer_did_not_sign_is_not_surveyed(
    agi_server: RunningServer, shared_dir: Path, cipher: PiiCipher, forgery: str
) -> None:
    """Answers for an attempt never placed, or for another citizen's dossier, must not reach the
    figures: the ids alone (all a dialplan or a stray connection has) are not enough."""
    dossier_id, attempt_id, _ = new_call(agi_server, cipher)
    other_dossier, _, _ = new_call(agi_server, cipher)
    variables = survey_variables(attempt_id, dossier_id, pii_key=PII_KEY)
    if forgery == "missing":
        del variables[c.VAR_CALL_TOKEN]
    elif forgery == "another dossier":  # a genuine token, for the same attempt and another dossier
        variables[c.VAR_CALL_TOKEN] = survey_variables(attempt_id, other_dossier, pii_key=PII_KEY)[
            c.VAR_CALL_TOKEN
        ]
    else:
        variables[c.VAR_CALL_TOKEN] = survey_variables(attempt_id, dossier_id, pii_key=b"k" * 32)[
            c.VAR_CALL_TOKEN
        ]
    fake = recorded_citizen(shared_dir, "answer", dossier_id, attempt_id)
    fake.variables = variables
    stats = play(agi_server, fake)
    assert fake.variables[c.VAR_SURVEY_END] == "error" and stats.closed_by_server
    assert "STREAM FILE" not in verbs(stats)  # not a word of the survey
    assert stored(agi_server, attempt_id) == (None, SurveyOutcome.NONE)
    expected = "CALL_TOKEN is missing" if forgery == "missing" else "CALL_TOKEN does not match"
    assert (
        f"{expected} for attempt {attempt_id} and dossier {dossier_id}; not surveying"
        in agi_server.log.read_text()
    )


def test_a_peer_that_leaves_early_does_not_freeze_the_server(
    agi_server: RunningServer, shared_dir: Path, cipher: PiiCipher
) -> None:
    async def leave_early() -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", agi_server.port)
        writer.write(b"agi_network: yes\nagi_network_script: survey\n")  # no blank line
        await writer.drain()
        writer.close()

    asyncio.run(leave_early())
    # the server still serves the next call
    test_hang_up_after_one_second(agi_server, shared_dir, cipher)


def test_usage_error_mid_call_keeps_the_answers(
    agi_server: RunningServer, shared_dir: Path, cipher: PiiCipher
) -> None:
    """A 520 reply (multi-line) where a 200 was expected ends the call, not the server."""
    dossier_id, attempt_id, _ = new_call(agi_server, cipher)
    _, records = load_recording(shared_dir / "fixtures" / "asterisk" / "agi-answer.jsonl")

    class UsageErrorOnReasons(FakeAsterisk):
        def reply_to(self, command: str) -> list[str]:
            if command.startswith("GET DATA") and " 9" in command[-3:]:
                return [
                    "520-Invalid command syntax.  Proper usage follows:\n",
                    "Usage text.\n",
                    "520 End of proper usage.\n",
                ]
            return super().reply_to(command)

    fake = UsageErrorOnReasons(
        environment_chunks(records),
        [CitizenInput("digits", "2")],
        variables=survey_variables(attempt_id, dossier_id, pii_key=PII_KEY),
    )
    stats = play(agi_server, fake)
    assert stats.closed_by_server
    row, outcome = stored(agi_server, attempt_id)
    assert row is not None and row.satisfied is False and outcome is SurveyOutcome.PARTIAL
    assert row.status == "partial"
    assert "usage error" in agi_server.log.read_text()


def test_keys_during_the_reason_list(agi_server: RunningServer, shared_dir: Path, cipher: PiiCipher) -> None:
    """2 pressed during the greeting, then 1 and 3 during the list of reasons."""
    dossier_id, attempt_id, _ = new_call(agi_server, cipher)
    _, records = load_recording(shared_dir / "fixtures" / "asterisk" / "agi-answer.jsonl")
    fake = FakeAsterisk(
        environment_chunks(records),
        [CitizenInput("digits", "2"), CitizenInput("digits", "13")],
        variables=survey_variables(attempt_id, dossier_id, pii_key=PII_KEY),
        barge_in=True,
    )
    stats = play(agi_server, fake)
    assert "WAIT FOR" in verbs(stats)  # the digits after the first
    row, outcome = stored(agi_server, attempt_id)
    assert row is not None and row.satisfied is False and outcome is SurveyOutcome.COMPLETED
    assert sorted(r.reason_code for r in row.reasons) == [1, 3]


class _SilentAsterisk:
    """An AGI request whose RECORD FILE writes the recording, then never answers (or answers garbage)."""

    def __init__(self, failure: Exception) -> None:
        self.failure = failure

    async def channel_command(self, command: str, timeout: float | None = None) -> AgiReply:
        return AgiReply(200, "0", None, None, "200 result=0")

    async def command(self, command: str, timeout: float | None = None) -> AgiReply:
        path, fmt = command.split(" ")[2:4]
        FakeAsterisk([], [], variables={}, write_recordings=True)._write_recording(path, fmt, 8000)
        raise self.failure


class _CachedPrompts:
    def cached(self, text: str) -> object:
        return SimpleNamespace(asterisk_name="survey/prompt")


@pytest.mark.parametrize("failure", [TimeoutError(), AGIProtocolError("garbled reply")])
def test_record_reply_that_never_comes_still_seals_the_recording(
    tmp_path: Path, settings: Settings, failure: Exception
) -> None:
    """The call fails (the error goes up), but not with the citizen's voice left in the clear."""
    transport = AgiTransport(
        _SilentAsterisk(failure),  # type: ignore[arg-type]
        prompts=_CachedPrompts(),  # type: ignore[arg-type]
        recording_base=str(tmp_path / "attempt-1"),
        sealer=sealer_from_settings(settings),
    )
    action = Record(
        prompt=(Utterance("Xin mời quý vị góp ý sau tiếng bíp.", key="ask_comment"),), max_seconds=30
    )
    with pytest.raises(type(failure)):
        asyncio.run(transport.record(action))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attempt-1-comment1.wav.enc"]
    audio = read_wav(sealer_from_settings(settings).open(tmp_path / "attempt-1-comment1.wav.enc"))
    assert len(audio.samples) == 8000
