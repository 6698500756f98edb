"""``callcenter asr …``: check the speech engine, transcribe a file, try the matcher and classifier.

``match`` and ``transcribe --question`` use what the IVR uses: the questionnaire's ``speech:`` phrases
(``CALLCENTER_IVR_QUESTIONNAIRE`` picks the file), its ``min_confidence``, and the flow's decision
for that question (callcenter/ivr/flow.py): taken, confirmed first, or asked again.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console

from callcenter.asr.audio import duration_seconds, read_wav
from callcenter.asr.classify import classify_comment
from callcenter.asr.engines import select_engine
from callcenter.asr.errors import AsrConfigError, AudioError
from callcenter.asr.settings import AsrSettings
from callcenter.asr.understand import AnswerMatch, match_answer
from callcenter.ivr.questionnaire import Questionnaire, QuestionnaireError, load_questionnaire
from callcenter.ivr.settings import IvrSettings

app = typer.Typer(help="Speech answers: engines, matching, comment classification.", no_args_is_help=True)
console = Console()


class Question(StrEnum):
    YES_NO = "yes-no"  # a confirmation ("Quý ông/bà vừa trả lời: …") or the opt-out question
    SATISFACTION = "satisfaction"
    REASONS = "reasons"
    COMMENT = "comment"  # the offer to leave a comment


def _questionnaire() -> Questionnaire:
    """The questionnaire the IVR reads (CALLCENTER_IVR_QUESTIONNAIRE, else the shipped one)."""
    try:
        return load_questionnaire(IvrSettings().questionnaire)
    except QuestionnaireError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc


def question_choices(q: Questionnaire, question: Question) -> dict[str, tuple[str, ...]]:
    """The choices the IVR matches a spoken answer to this question against."""
    if question is Question.YES_NO:
        return q.confirm_choices()
    if question is Question.SATISFACTION:
        return q.satisfaction_choices()
    if question is Question.COMMENT:
        return q.comment_choices()
    return q.reason_choices()


@dataclass(frozen=True, slots=True)
class Decision:
    match: AnswerMatch
    confidence: float  # the engine's confidence and the match's, the lower (as the IVR takes it)
    verdict: str


def ivr_decision(
    q: Questionnaire, question: Question, text: str, *, engine_confidence: float = 1.0
) -> Decision:
    """What the IVR does with ``text`` heard at ``question`` (the rules of callcenter/ivr/flow.py)."""
    match = match_answer(text, question_choices(q, question))
    confidence = min(engine_confidence, match.confidence)
    low = confidence < q.speech.min_confidence
    if question is Question.YES_NO:
        # A confirmation is never confirmed in turn: a clear yes or no is taken, and anything else
        # (nothing matched, or an unsure match) counts as no: the question again with keys only;
        # after 0, the survey goes on.
        taken = match.choice is not None and not low
        verdict = f"taken: {match.choice}" if taken else "not understood: counts as no"
    elif question is Question.COMMENT:
        if match.choice == "yes" and not low:
            verdict = "taken: records a comment"
        else:
            verdict = "no comment: thanks and goodbye"
    elif question is Question.REASONS:
        if not match.choices:
            verdict = "not understood: asks again"
        elif low:
            verdict = 'confirm: asks "Quý ông/bà vừa chọn: …" first'
        else:
            verdict = "taken"
    elif match.choice is None:
        verdict = "not understood: asks again" + (" (several answers)" if match.choices else "")
    elif low:
        verdict = 'confirm: asks "Quý ông/bà vừa trả lời: …" first'
    else:
        verdict = "taken"
    return Decision(match, round(confidence, 4), verdict)


@app.command("engine")
def engine() -> None:
    """Say which engine the settings select (CALLCENTER_ASR_*) and load it once."""
    settings = AsrSettings()
    try:
        spec, reason = select_engine(settings)
        if spec is None:
            console.print(f"speech off: {reason}")
            return
        recognizer = spec()
    except AsrConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    console.print(
        f"[green]{recognizer.name}[/green] ready ({reason}), model rate {recognizer.sample_rate} Hz"
    )


@app.command("transcribe")
def transcribe(
    wav: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="A WAV file (any rate, mono or stereo)."
    ),
    question: Question | None = typer.Option(None, help="Also match the text to this question's choices."),
) -> None:
    """Transcribe a WAV file with the configured engine (and match it to a question)."""
    settings = AsrSettings()
    try:
        spec, reason = select_engine(settings)
        if spec is None:
            console.print(f"[red]no speech engine: {reason}[/red]")
            raise typer.Exit(2)
        recognizer = spec()
        pcm, rate = read_wav(wav)
    except (AsrConfigError, AudioError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    q = _questionnaire() if question else None
    # The recogniser gets the question's phrases as hints, as in a call.
    phrases = [p for ps in question_choices(q, question).values() for p in ps] if q and question else None
    transcript = recognizer.transcribe(pcm, rate, phrases=phrases)
    console.print(
        f"{wav.name}: {duration_seconds(pcm, rate):.1f} s at {rate} Hz → {transcript.text!r} "
        f"(engine {transcript.engine}, confidence {transcript.confidence:.2f})"
    )
    if q and question:
        d = ivr_decision(q, question, transcript.text, engine_confidence=transcript.confidence)
        console.print(
            f"answer: {d.match.choices or '—'} confidence {d.confidence:.2f} ({d.match.matched}) → IVR: "
            f"{d.verdict}",
            markup=False,
            soft_wrap=True,
        )


@app.command("match")
def match(text: str, question: Question = typer.Option(Question.YES_NO)) -> None:
    """Show what the IVR makes of a typed answer (engine confidence 1): the questionnaire's phrases,
    its min_confidence, and the flow's decision (taken, confirm first, or ask again)."""
    d = ivr_decision(_questionnaire(), question, text)
    console.print(
        f"choice {d.match.choice} · all {list(d.match.choices)} · confidence {d.confidence:.2f} · "
        f"matched {d.match.matched!r} → IVR: {d.verdict}",
        markup=False,
        soft_wrap=True,
    )


@app.command("classify")
def classify(text: str) -> None:
    """Show the reasons (1..9) a comment speaks of, with the words that triggered each."""
    hits = classify_comment(text)
    if not hits:
        console.print("no reason found")
    for hit in hits:
        console.print(f"reason {hit.code}: {', '.join(hit.words)}")
