"""``callcenter asr …``: check the speech engine, transcribe a file, try the matcher and classifier."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console

from callcenter.asr.audio import duration_seconds, read_wav
from callcenter.asr.classify import classify_comment
from callcenter.asr.engines import select_engine
from callcenter.asr.errors import AsrConfigError, AudioError
from callcenter.asr.settings import AsrSettings
from callcenter.asr.understand import (
    SATISFACTION_CHOICES,
    YES_NO_CHOICES,
    match_answer,
    reason_choices,
)
from callcenter.ivr.questionnaire import QuestionnaireError, load_questionnaire
from callcenter.ivr.settings import IvrSettings

app = typer.Typer(help="Speech answers: engines, matching, comment classification.", no_args_is_help=True)
console = Console()


class Question(StrEnum):
    YES_NO = "yes-no"
    SATISFACTION = "satisfaction"
    REASONS = "reasons"


def _confirm_threshold() -> float:
    """The confidence below which the IVR confirms a spoken answer: the questionnaire's
    ``speech.min_confidence`` (the one threshold; CALLCENTER_IVR_QUESTIONNAIRE picks the file)."""
    try:
        return load_questionnaire(IvrSettings().questionnaire).speech.min_confidence
    except QuestionnaireError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc


def _choices(question: Question) -> dict[str, list[str]]:
    if question is Question.YES_NO:
        return {k: list(v) for k, v in YES_NO_CHOICES.items()}
    if question is Question.SATISFACTION:
        return {k: list(v) for k, v in SATISFACTION_CHOICES.items()}
    return reason_choices()


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
    choices = _choices(question) if question else None
    phrases = [p for ps in choices.values() for p in ps] if choices else None
    transcript = recognizer.transcribe(pcm, rate, phrases=phrases)
    console.print(
        f"{wav.name}: {duration_seconds(pcm, rate):.1f} s at {rate} Hz → {transcript.text!r} "
        f"(engine {transcript.engine}, confidence {transcript.confidence:.2f})"
    )
    if choices:
        match = match_answer(transcript.text, choices, engine_confidence=transcript.confidence)
        verdict = "taken" if match.is_confident(_confirm_threshold()) else "confirm or ask for the key"
        console.print(
            f"answer: {match.choices or '—'} confidence {match.confidence:.2f} ({match.matched}) → {verdict}"
        )


@app.command("match")
def match(text: str, question: Question = typer.Option(Question.YES_NO)) -> None:
    """Show how a transcript maps to a question's choices (typed text: engine confidence 1)."""
    result = match_answer(text, _choices(question))
    verdict = "taken" if result.is_confident(_confirm_threshold()) else "confirm"
    console.print(
        f"choice {result.choice} · all {list(result.choices)} · confidence {result.confidence:.2f} · "
        f"matched {result.matched!r} → {verdict}"
    )


@app.command("classify")
def classify(text: str) -> None:
    """Show the reasons (1..9) a comment speaks of, with the words that triggered each."""
    hits = classify_comment(text)
    if not hits:
        console.print("no reason found")
    for hit in hits:
        console.print(f"reason {hit.code}: {', '.join(hit.words)}")
