"""Spoken answers over AGI: RECORD FILE, then recognition off the event loop (injected recogniser)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from callcenter.asr.service import Transcript
from callcenter.core.clock import SystemClock
from callcenter.core.db import make_session_factory
from callcenter.core.pii import PiiCipher
from callcenter.ivr import constants as c
from callcenter.ivr.agi_server import SurveyAgiApplication, start_agi_server
from callcenter.ivr.agi_testing import CitizenInput, FakeAsterisk, environment_chunks, load_recording
from callcenter.ivr.questionnaire import load_questionnaire
from callcenter.ivr.service import get_response
from callcenter.ivr.tts import PromptLibrary, default_engines
from tests.ivr.conftest import make_dossier


class ScriptedRecogniser:
    """Hears what it is told to, and remembers what it was given."""

    def __init__(self, *answers: Transcript) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[int, int, tuple[str, ...]]] = []

    async def transcribe(
        self, pcm16: bytes, sample_rate: int, *, phrases: Sequence[str] | None = None
    ) -> Transcript:
        self.calls.append((len(pcm16), sample_rate, tuple(phrases or ())))
        await asyncio.sleep(0)
        return self.answers.pop(0) if self.answers else Transcript("", 0.0)


@pytest.mark.parametrize("engine_name", ["sqlite", "pg"])
def test_spoken_answers_over_agi(
    request: pytest.FixtureRequest, engine_name: str, tmp_path: Path, shared_dir: Path, cipher: PiiCipher
) -> None:
    engine: Engine = request.getfixturevalue(f"{engine_name}_engine")
    with Session(engine) as session:
        dossier = make_dossier(session, cipher)
        session.commit()
        dossier_id = dossier.id
    attempt_id = 880_000 + (0 if engine_name == "sqlite" else 1)
    recogniser = ScriptedRecogniser(Transcript("dạ tôi hài lòng", 0.93))
    _, records = load_recording(shared_dir / "fixtures" / "asterisk" / "agi-answer.jsonl")
    fake = FakeAsterisk(
        environment_chunks(records),
        [CitizenInput("recording", endpos=8000, ended_by="timeout")],  # one second of "speech"
        variables={c.VAR_ATTEMPT_ID: str(attempt_id), c.VAR_DOSSIER_ID: str(dossier_id)},
        write_recordings=True,
    )

    async def run() -> None:
        app = SurveyAgiApplication(
            sessions=make_session_factory(engine),
            clock=SystemClock(),
            questionnaire=load_questionnaire(),
            prompts=PromptLibrary(tmp_path / "prompts", default_engines(gtts_timeout=0.3)),
            recordings_dir=tmp_path,
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
