"""Spoken answers over AGI: RECORD FILE, then recognition off the event loop (injected recogniser)."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from callcenter.asr.errors import RecognitionFailed
from callcenter.asr.service import Transcript
from callcenter.core.clock import SystemClock
from callcenter.core.db import make_session_factory
from callcenter.core.pii import PiiCipher
from callcenter.core.settings import Settings
from callcenter.ivr import constants as c
from callcenter.ivr.agi_server import SurveyAgiApplication, start_agi_server
from callcenter.ivr.agi_testing import (
    CitizenInput,
    FakeAsterisk,
    environment_chunks,
    load_recording,
    survey_variables,
)
from callcenter.ivr.call_token import call_token_key
from callcenter.ivr.questionnaire import load_questionnaire
from callcenter.ivr.service import get_response
from callcenter.ivr.tts import PromptLibrary, default_engines
from tests.ivr.conftest import make_dossier

PII_KEY = Settings(env="test").pii_key_bytes


class ScriptedRecogniser:
    """Hears what it is told to (or fails as it is told to), and remembers what it was given."""

    def __init__(self, *answers: Transcript | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[int, int, tuple[str, ...]]] = []

    async def transcribe(
        self, pcm16: bytes, sample_rate: int, *, phrases: Sequence[str] | None = None
    ) -> Transcript:
        self.calls.append((len(pcm16), sample_rate, tuple(phrases or ())))
        await asyncio.sleep(0)
        answer = self.answers.pop(0) if self.answers else Transcript("", 0.0)
        if isinstance(answer, Exception):
            raise answer
        return answer


class ClipWritingAsterisk(FakeAsterisk):
    """Leaves a clip on disk for every RECORD FILE, as Asterisk does, even when a key, a hang-up or
    silence ends it (the plain fake writes one only for a recording or a hang-up)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, write_recordings=True, **kwargs)
        self.clips: list[Path] = []

    def _input_reply(self, command: str) -> str:
        reply = super()._input_reply(command)
        if command.startswith("RECORD FILE"):
            path, fmt = command.split(" ")[2:4]
            clip = Path(f"{path}.{fmt}")
            if not clip.exists():
                samples = int(reply.rsplit("endpos=", 1)[1]) if "endpos=" in reply else 0
                with wave.open(str(clip), "wb") as out:
                    out.setnchannels(1)
                    out.setsampwidth(2)
                    out.setframerate(8000)
                    out.writeframes(b"\x10\x00" * samples)
            self.clips.append(clip)
        return reply


def serve_one_call(
    engine: Engine, tmp_path: Path, recogniser: ScriptedRecogniser, fake: FakeAsterisk
) -> None:
    """Run the survey's FastAGI server (speech on) for one fake Asterisk call, until it ends."""

    async def run() -> None:
        app = SurveyAgiApplication(
            sessions=make_session_factory(engine),
            clock=SystemClock(),
            questionnaire=load_questionnaire(),
            prompts=PromptLibrary(tmp_path / "prompts", default_engines(gtts_timeout=0.3)),
            recordings_dir=tmp_path,
            token_key=call_token_key(PII_KEY),
            transcriber=recogniser,
        )
        server = await start_agi_server(app, "127.0.0.1", 0)
        try:
            await asyncio.wait_for(fake.run("127.0.0.1", server.sockets[0].getsockname()[1]), 60)
        finally:
            server.close()
            await server.wait_closed()
            app.close()

    asyncio.run(run())


def new_dossier(engine: Engine, cipher: PiiCipher) -> int:
    with Session(engine) as session:
        dossier = make_dossier(session, cipher)
        session.commit()
        return dossier.id


@pytest.mark.parametrize("engine_name", ["sqlite", "pg"])
def test_spoken_answers_over_agi(
    request: pytest.FixtureRequest, engine_name: str, tmp_path: Path, shared_dir: Path, cipher: PiiCipher
) -> None:
    engine: Engine = request.getfixturevalue(f"{engine_name}_engine")
    dossier_id = new_dossier(engine, cipher)
    attempt_id = 880_000 + (0 if engine_name == "sqlite" else 1)
    recogniser = ScriptedRecogniser(Transcript("dạ tôi hài lòng", 0.93))
    _, records = load_recording(shared_dir / "fixtures" / "asterisk" / "agi-answer.jsonl")
    fake = FakeAsterisk(
        environment_chunks(records),
        [CitizenInput("recording", endpos=8000, ended_by="timeout")],  # one second of "speech"
        variables=survey_variables(attempt_id, dossier_id, pii_key=PII_KEY),
        write_recordings=True,
    )

    serve_one_call(engine, tmp_path, recogniser, fake)
    record = next(cmd for cmd in fake.stats.commands if cmd.startswith("RECORD FILE"))
    assert record.startswith(f"RECORD FILE {tmp_path}/attempt-{attempt_id}-answer1 wav")
    assert '"0123456789*#"' in record  # keys still answer while listening
    size, rate, phrases = recogniser.calls[0]
    assert (size, rate) == (16000, 8000) and "hài lòng" in phrases and "chưa hài lòng" in phrases
    with Session(engine) as session:
        row = get_response(session, attempt_id=attempt_id)
        assert row is not None and row.satisfied is True and row.answered_via == "speech"
        assert row.status == "completed"
    assert fake.variables[c.VAR_SURVEY_OUTCOME] == "completed"
    assert not (tmp_path / f"attempt-{attempt_id}-answer1.wav").exists()  # only the transcript is kept


def test_engine_failure_is_no_answer_and_the_question_is_asked_again(
    sqlite_engine: Engine, tmp_path: Path, shared_dir: Path, cipher: PiiCipher
) -> None:
    """The engine failing on an utterance is the citizen not being heard, not the citizen hanging up."""
    dossier_id = new_dossier(sqlite_engine, cipher)
    attempt_id = 880_010
    recogniser = ScriptedRecogniser(
        RecognitionFailed("vosk failed on a 16000-byte utterance: Kaldi said no"),
        Transcript("dạ tôi hài lòng", 0.93),
    )
    _, records = load_recording(shared_dir / "fixtures" / "asterisk" / "agi-answer.jsonl")
    fake = ClipWritingAsterisk(
        environment_chunks(records),
        [CitizenInput("recording", endpos=8000, ended_by="timeout")] * 2,  # says it, then says it again
        variables=survey_variables(attempt_id, dossier_id, pii_key=PII_KEY),
    )

    serve_one_call(sqlite_engine, tmp_path, recogniser, fake)

    assert len(recogniser.calls) == 2  # the question was asked again after the failure
    assert fake.variables.get(c.VAR_SURVEY_END) == "completed"
    assert fake.variables.get(c.VAR_SURVEY_OUTCOME) == "completed"
    with Session(sqlite_engine) as session:
        row = get_response(session, attempt_id=attempt_id)
        assert row is not None and row.satisfied is True and row.answered_via == "speech"
    assert fake.clips and not [clip.name for clip in fake.clips if clip.exists()]


@pytest.mark.parametrize(
    ("attempt_id", "citizen", "end", "satisfied"),
    [
        pytest.param(
            880_021, CitizenInput("digits", "1"), "completed", True, id="key-pressed-while-speaking"
        ),
        pytest.param(
            880_022, CitizenInput("hangup", endpos=8000), "hangup", None, id="hung-up-while-speaking"
        ),
        pytest.param(880_023, CitizenInput("timeout"), "no_input", None, id="nothing-recorded"),
    ],
)
def test_answer_clip_is_deleted_when_recording_ends_early(
    sqlite_engine: Engine,
    tmp_path: Path,
    shared_dir: Path,
    cipher: PiiCipher,
    attempt_id: int,
    citizen: CitizenInput,
    end: str,
    satisfied: bool | None,
) -> None:
    """A spoken answer's clip never stays on disk, whatever ended the recording."""
    dossier_id = new_dossier(sqlite_engine, cipher)
    recogniser = ScriptedRecogniser()
    _, records = load_recording(shared_dir / "fixtures" / "asterisk" / "agi-answer.jsonl")
    fake = ClipWritingAsterisk(
        environment_chunks(records),
        [citizen],
        variables=survey_variables(attempt_id, dossier_id, pii_key=PII_KEY),
    )

    serve_one_call(sqlite_engine, tmp_path, recogniser, fake)

    assert fake.clips[0].name == f"attempt-{attempt_id}-answer1.wav"
    assert not [clip.name for clip in fake.clips if clip.exists()]
    assert recogniser.calls == []  # nothing was worth transcribing
    assert fake.variables.get(c.VAR_SURVEY_END) == end
    with Session(sqlite_engine) as session:
        row = get_response(session, attempt_id=attempt_id)
        assert row is not None and row.satisfied is satisfied
