"""Rendered prompt audio: telephone format, not silent, within the time budgets; TTS fallback and cache."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from callcenter.ivr.adapters.audio import read_wav
from callcenter.ivr.adapters.tts_engines import EspeakEngine, GttsEngine, TtsUnavailable
from callcenter.ivr.flow import (
    CallContext,
    CollectKeys,
    Keys,
    Play,
    Record,
    RecordingDone,
    SurveyFlow,
    Timeout,
)
from callcenter.ivr.questionnaire import Questionnaire, load_questionnaire
from callcenter.ivr.tts import FORMATS, NoEngineAvailable, PromptLibrary, RenderedPrompt, default_engines

MIN_RMS = 0.02  # espeak speech sits around 0.1; digital silence is 0

# A long but real agency name and field, to test the budget on a worst case rather than a short one.
CTX = CallContext(
    dossier_id=1,
    agency_id=1,
    agency_name="Trung tâm Phục vụ hành chính công thành phố Đà Nẵng",
    field_id=1,
    field_name="Đăng ký kinh doanh",
    returned_on=date(2025, 12, 28),
)


@pytest.fixture(scope="module")
def questionnaire() -> Questionnaire:
    return load_questionnaire()


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> PromptLibrary:
    # The real chain: gTTS (unreachable here, fails fast) then espeak-ng.
    return PromptLibrary(tmp_path_factory.mktemp("prompts"), default_engines(gtts_timeout=0.5))


@pytest.fixture(scope="module")
def static_prompts(library: PromptLibrary, questionnaire: Questionnaire) -> dict[str, RenderedPrompt]:
    return {name: library.render(text) for name, text in questionnaire.static_texts().items()}


def test_every_prompt_is_8khz_mono_16bit_and_not_silent(
    static_prompts: dict[str, RenderedPrompt], library: PromptLibrary, questionnaire: Questionnaire
) -> None:
    assert len(static_prompts) >= 27
    # and a dynamic one: the dossier sentence with agency, field and spoken date
    flow = SurveyFlow(questionnaire, CTX)
    dossier = next(u for a in flow.start() for u in getattr(a, "prompt", ()) if u.key is None)
    prompts = {**static_prompts, "dossier (dynamic)": library.render(dossier.text)}
    for name, rendered in prompts.items():
        info = sf.info(str(rendered.path("wav")))
        assert (info.samplerate, info.channels, info.subtype) == (8000, 1, "PCM_16"), name
        audio = read_wav(rendered.path("wav").read_bytes())
        assert audio.rms() > MIN_RMS, f"{name} is silent (RMS {audio.rms():.4f})"
        assert 0.5 < audio.duration < 15, f"{name} lasts {audio.duration:.1f} s"
        assert abs(audio.duration - rendered.duration) < 0.01
        sln = rendered.path("sln").read_bytes()
        assert np.array_equal(np.frombuffer(sln, dtype="<i2"), audio.samples), name
        mp3, rate = sf.read(str(rendered.path("mp3")))
        assert rate == 8000 and mp3.ndim == 1 and abs(len(mp3) / rate - audio.duration) < 0.2, name


def test_prompts_fall_back_to_espeak_and_say_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, questionnaire: Questionnaire
) -> None:
    library = PromptLibrary(tmp_path, [GttsEngine(timeout=0.5), EspeakEngine()])
    with caplog.at_level(logging.INFO, logger="callcenter.ivr.tts"):
        rendered = library.render(questionnaire.prompts["thanks"])
    assert rendered.engine == "espeak-ng"
    messages = [r.getMessage() for r in caplog.records]
    assert any("gtts unavailable" in m and "falling back" in m for m in messages)
    assert any("rendered with espeak-ng" in m for m in messages)


class CountingEngine:
    def __init__(
        self, inner: EspeakEngine | None = None, *, broken: bool = False, name: str = "counting"
    ) -> None:
        self.name = name
        self.voice = "test"
        self.calls = 0
        self.inner = inner or EspeakEngine()
        self.broken = broken

    def synthesize(self, text: str) -> bytes:
        self.calls += 1
        if self.broken:
            raise TtsUnavailable("no network")
        return self.inner.synthesize(text)


def test_cache_is_keyed_by_text_engine_and_voice(tmp_path: Path) -> None:
    broken = CountingEngine(broken=True, name="remote")
    local = CountingEngine()
    now = [0.0]
    library = PromptLibrary(tmp_path, [broken, local], retry_after=60, monotonic=lambda: now[0])
    first = library.render("Sở Xây dựng")
    second = library.render("Sở Xây dựng")
    assert first == second and local.calls == 1  # cached
    library.render("Sở Y tế")
    assert broken.calls == 1  # the failing engine is not retried for every prompt…
    now[0] = 61.0
    library.render("Sở Nội vụ")
    assert broken.calls == 2  # …but again after retry_after
    # a new process finds the files on disk
    again = PromptLibrary(tmp_path, [broken, local])
    assert again.cached("Sở Xây dựng") == first and local.calls == 3
    assert again.by_key(first.key) == first and again.by_key("../../etc/passwd") is None
    assert all(first.path(fmt).exists() for fmt in FORMATS)


class RecordingEngine(CountingEngine):
    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def synthesize(self, text: str) -> bytes:
        self.texts.append(text)
        return super().synthesize(text)


def test_engines_are_given_administrative_abbreviations_spelled_out(tmp_path: Path) -> None:
    """espeak-ng reads "UBND" as English; the citizen must hear "Ủy ban nhân dân"."""
    engine = RecordingEngine()
    library = PromptLibrary(tmp_path, [engine])
    library.render("Hồ sơ của quý ông/bà tại UBND phường Hải Châu, TP. Đà Nẵng")
    library.render("Sở LĐTBXH: cấp GCN QSDĐ, đăng ký 2 lần")
    assert engine.texts == [
        "Hồ sơ của quý ông bà tại Ủy ban nhân dân phường Hải Châu, thành phố Đà Nẵng",
        "Sở Lao động - Thương binh và Xã hội: cấp giấy chứng nhận quyền sử dụng đất, đăng ký hai lần",
    ]


def test_no_engine_at_all_is_a_clear_error(tmp_path: Path) -> None:
    library = PromptLibrary(tmp_path, [CountingEngine(broken=True, name="remote")])
    with pytest.raises(NoEngineAvailable, match="remote: no network"):
        library.render("Xin chào")


def _path_audio(library: PromptLibrary, flow: SurveyFlow, events: list[object]) -> float:
    """Seconds of audio the citizen hears on one path through the flow."""
    actions = flow.start()
    total = 0.0
    pending = list(events)
    while actions:
        for action in actions:
            if isinstance(action, Play | CollectKeys | Record):
                total += sum(library.render(u.text).duration for u in action.prompt)
        if flow.ended:
            break
        actions = flow.handle(pending.pop(0))  # type: ignore[arg-type]
    return total


@pytest.mark.parametrize("speech", [False, True])
def test_satisfied_path_fits_in_45_seconds(
    library: PromptLibrary, questionnaire: Questionnaire, static_prompts: object, speech: bool
) -> None:
    flow = SurveyFlow(questionnaire, CTX, speech_enabled=speech)
    seconds = _path_audio(library, flow, [Keys("1"), Timeout()])
    assert flow.result.outcome.value == "completed"
    assert seconds <= 45, f"satisfied path: {seconds:.1f} s of audio"


@pytest.mark.parametrize(("speech", "reason"), [(False, "4"), (True, "4"), (False, "9"), (True, "9")])
def test_unsatisfied_path_with_one_reason_fits_in_75_seconds(
    library: PromptLibrary, questionnaire: Questionnaire, static_prompts: object, speech: bool, reason: str
) -> None:
    flow = SurveyFlow(questionnaire, CTX, speech_enabled=speech)
    after = [RecordingDone("r.wav", 5.0)] if reason == "9" else [Timeout()]
    seconds = _path_audio(library, flow, [Keys("2"), Keys(reason), *after])
    assert flow.result.reasons == {int(reason): "dtmf"}
    assert seconds <= 75, f"unsatisfied path: {seconds:.1f} s of audio"
