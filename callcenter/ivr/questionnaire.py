"""The questionnaire: a versioned YAML file under ``prompts/``, loaded and validated with pydantic.

Questions, keys, reasons and spoken texts are configuration, not code: the list of reasons may grow
("other criteria set by the Government"). A reason with a ``key`` can be chosen on the keypad; one
without can still be given by voice.
"""

from __future__ import annotations

from pathlib import Path
from string import Formatter
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from callcenter.asr.understand import number_phrases
from callcenter.core.errors import ValidationError as CallCenterValidationError

DEFAULT_QUESTIONNAIRE = Path(__file__).resolve().parents[2] / "prompts" / "questionnaire.vi.yaml"

Digit = Annotated[str, StringConstraints(pattern=r"^[0-9*#]$")]
ReasonKey = Annotated[str, StringConstraints(pattern=r"^[1-9]$")]
Phrase = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]

# Every prompt the flow engine plays, with the placeholders each one must (and may only) carry.
PROMPT_PLACEHOLDERS: dict[str, frozenset[str]] = {
    "greeting": frozenset(),
    "dossier": frozenset({"field", "agency", "returned_date"}),
    "dossier_no_date": frozenset({"field", "agency"}),
    "ask_satisfaction": frozenset(),
    "ask_satisfaction_speech": frozenset(),
    "ask_reasons_intro": frozenset(),
    "reason_option": frozenset({"key", "label"}),
    "ask_reasons_speech": frozenset(),
    "record_other_reason": frozenset(),
    "offer_comment": frozenset(),
    "record_comment": frozenset(),
    "confirm_satisfied": frozenset(),
    "confirm_unsatisfied": frozenset(),
    "confirm_reasons": frozenset({"labels"}),
    "not_understood": frozenset(),
    "no_input": frozenset(),
    "invalid_key": frozenset(),
    "ask_opt_out": frozenset(),
    "opted_out": frozenset(),
    "thanks": frozenset(),
    "goodbye": frozenset(),
    "ended_no_input": frozenset(),
}


class QuestionnaireError(CallCenterValidationError):
    """The questionnaire file is missing, unreadable or inconsistent; the message names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Keys(_Strict):
    satisfied: Digit = "1"
    unsatisfied: Digit = "2"
    repeat: Digit = "*"
    opt_out: Digit = "0"
    finish: Digit = "#"
    confirm: Digit = "1"
    deny: Digit = "2"
    comment: Digit = "1"

    @model_validator(mode="after")
    def _distinct(self) -> Keys:
        first = {self.satisfied, self.unsatisfied, self.repeat, self.opt_out}
        if len(first) != 4:
            raise ValueError("satisfied, unsatisfied, repeat and opt_out must be four different keys")
        if self.confirm == self.deny:
            raise ValueError("confirm and deny must be different keys")
        if self.finish in first:
            raise ValueError("finish must differ from the answer, repeat and opt-out keys")
        return self


class Timing(_Strict):
    answer_timeout_seconds: float = Field(default=6, gt=0, le=30)
    reasons_timeout_seconds: float = Field(default=8, gt=0, le=30)
    comment_max_seconds: int = Field(default=30, gt=0, le=120)
    comment_silence_seconds: int = Field(default=3, ge=0, le=10)
    max_retries: int = Field(default=2, ge=0, le=5)
    max_repeats: int = Field(default=3, ge=0, le=10)


class SpeechPhrases(_Strict):
    min_confidence: float = Field(default=0.6, ge=0, le=1)
    satisfied: tuple[Phrase, ...]
    unsatisfied: tuple[Phrase, ...]
    confirm: tuple[Phrase, ...]
    deny: tuple[Phrase, ...]
    finish: tuple[Phrase, ...] = ()
    comment: tuple[Phrase, ...] = ()


class Reason(_Strict):
    code: int = Field(ge=1)
    key: ReasonKey | None = None
    label: Phrase  # short, spoken in the list of options
    description: Phrase  # the full criterion, for reports
    phrases: tuple[Phrase, ...] = ()
    records_comment: bool = False  # "other reason": record the citizen's own words


class Questionnaire(_Strict):
    """One version of the survey: what is asked, which keys answer it, and what is said."""

    version: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    language: str = "vi-VN"
    hotline: str = "1022"
    keys: Keys = Field(default_factory=Keys)
    timing: Timing = Field(default_factory=Timing)
    speech: SpeechPhrases
    reasons: tuple[Reason, ...] = Field(min_length=1)
    prompts: dict[str, Phrase]

    @model_validator(mode="after")
    def _consistent(self) -> Questionnaire:
        codes = [r.code for r in self.reasons]
        if len(set(codes)) != len(codes):
            raise ValueError(f"reasons: duplicate code in {codes}")
        keys = [r.key for r in self.reasons if r.key is not None]
        if len(set(keys)) != len(keys):
            raise ValueError(f"reasons: duplicate key in {keys}")
        reserved = {self.keys.repeat, self.keys.opt_out, self.keys.finish}
        clash = reserved.intersection(keys)
        if clash:
            raise ValueError(f"reasons: key {sorted(clash)} is reserved for repeat/opt-out/finish")
        missing = sorted(set(PROMPT_PLACEHOLDERS) - set(self.prompts))
        if missing:
            raise ValueError(f"prompts: missing {missing}")
        unknown = sorted(set(self.prompts) - set(PROMPT_PLACEHOLDERS))
        if unknown:
            raise ValueError(f"prompts: unknown prompt names {unknown}")
        for name, text in self.prompts.items():
            used = {f for _, f, _, _ in Formatter().parse(text) if f is not None}
            if used != PROMPT_PLACEHOLDERS[name]:
                raise ValueError(
                    f"prompts.{name}: placeholders {sorted(used)} but expected "
                    f"{sorted(PROMPT_PLACEHOLDERS[name])}"
                )
        return self

    def reason_by_key(self, key: str) -> Reason | None:
        return next((r for r in self.reasons if r.key == key), None)

    def reason_by_code(self, code: int) -> Reason | None:
        return next((r for r in self.reasons if r.code == code), None)

    @property
    def keyed_reasons(self) -> tuple[Reason, ...]:
        return tuple(r for r in self.reasons if r.key is not None)

    # The choices a spoken answer is matched against, as the IVR's flow builds them (a test keeps the
    # two identical); ``callcenter asr match`` shows the IVR's verdict with these.

    def satisfaction_choices(self) -> dict[str, tuple[str, ...]]:
        """For "Quý ông/bà có hài lòng không?": ``satisfied`` / ``unsatisfied``."""
        return {"satisfied": self.speech.satisfied, "unsatisfied": self.speech.unsatisfied}

    def confirm_choices(self) -> dict[str, tuple[str, ...]]:
        """For a confirmation ("Quý ông/bà vừa trả lời: …", the opt-out question): ``yes`` / ``no``."""
        return {"yes": self.speech.confirm, "no": self.speech.deny}

    def comment_choices(self) -> dict[str, tuple[str, ...]]:
        """For the comment offer: ``yes`` (the comment phrases or a plain yes) / ``no``."""
        return {"yes": self.speech.comment + self.speech.confirm, "no": self.speech.deny}

    def reason_choices(self) -> dict[str, tuple[str, ...]]:
        """Spoken forms of each reason: its label, its phrases, and its key as a number ("số hai")."""
        return {
            str(r.code): (r.label, *r.phrases, *(number_phrases(int(r.key)) if r.key else ()))
            for r in self.reasons
        }

    def static_texts(self) -> dict[str, str]:
        """Every prompt that is the same on every call, by the name the flow plays it under."""
        texts = {name: text for name, text in self.prompts.items() if not PROMPT_PLACEHOLDERS[name]}
        for reason in self.keyed_reasons:
            texts[f"reason_option_{reason.code}"] = self.text(
                "reason_option", key=reason.key, label=reason.label
            )
        return texts

    def text(self, name: str, **values: object) -> str:
        """The text of one prompt with its placeholders filled."""
        return self.prompts[name].format(**values)


def parse_questionnaire(data: object, *, source: str = "<questionnaire>") -> Questionnaire:
    """Validate already-parsed YAML; errors name the file and the field at fault."""
    try:
        return Questionnaire.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise QuestionnaireError(f"{first['msg']} (in {source})", field=where) from exc


def load_questionnaire(path: Path | None = None) -> Questionnaire:
    """Read and validate a questionnaire file (default: ``prompts/questionnaire.vi.yaml``)."""
    path = path or DEFAULT_QUESTIONNAIRE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise QuestionnaireError(f"{path}: cannot read the questionnaire ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise QuestionnaireError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc
    except yaml.YAMLError as exc:
        raise QuestionnaireError(f"{path}: not valid YAML ({exc})") from exc
    return parse_questionnaire(raw, source=str(path))
