"""End to end on real speech: the ten "đúng" and ten "không" recordings → engine → match_answer.

viet-asr is the engine that works here (no Vietnamese Vosk model is obtainable on this machine).
A wrong decision ("không" taken as yes, or the reverse) is a failure; an unconfident answer is a
re-ask, allowed at most 2 in 20 (the issue's "at most 1 in 10").
"""

from __future__ import annotations

from pathlib import Path

from callcenter.asr.adapters.viet_asr_engine import VietAsrRecognizer
from callcenter.asr.audio import read_wav
from callcenter.asr.understand import DEFAULT_CONFIRM_THRESHOLD, YES_NO_CHOICES, match_answer

EXPECTED = {"đúng": "yes", "không": "no"}


def test_yes_no_on_the_twenty_real_clips(
    viet_asr: VietAsrRecognizer, speech_dir: Path, speech_transcripts: dict[str, str]
) -> None:
    clips = {name: text for name, text in speech_transcripts.items() if text in EXPECTED}
    assert len(clips) == 20
    wrong: list[str] = []
    reasks: list[str] = []
    for name, said in sorted(clips.items()):
        pcm, rate = read_wav(speech_dir / name)
        phrases = [p for ps in YES_NO_CHOICES.values() for p in ps]
        transcript = viet_asr.transcribe(pcm, rate, phrases=phrases)
        match = match_answer(transcript.text, YES_NO_CHOICES, engine_confidence=transcript.confidence)
        if match.choice is None or match.confidence < DEFAULT_CONFIRM_THRESHOLD:
            reasks.append(f"{name}: heard {transcript.text!r}")
        elif match.choice != EXPECTED[said]:
            wrong.append(f"{name}: said {said!r}, heard {transcript.text!r}, took {match.choice}")
    assert wrong == []
    assert len(reasks) <= 2, reasks


def test_other_words_are_never_taken_for_yes_or_no(
    viet_asr: VietAsrRecognizer, speech_dir: Path, speech_transcripts: dict[str, str]
) -> None:
    # "cà phê", "khách sạn" … answering a yes/no question must lead to a re-ask, not an answer.
    others = sorted(n for n, t in speech_transcripts.items() if t not in EXPECTED)[::4]
    taken = []
    for name in others:
        pcm, rate = read_wav(speech_dir / name)
        transcript = viet_asr.transcribe(pcm, rate)
        match = match_answer(transcript.text, YES_NO_CHOICES, engine_confidence=transcript.confidence)
        if match.is_confident():
            taken.append(f"{name}: heard {transcript.text!r} → {match.choice}")
    assert taken == []
