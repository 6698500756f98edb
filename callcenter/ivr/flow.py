"""The survey call as a pure state machine: events in, actions out, no I/O.

One engine serves every transport (Asterisk FastAGI, Twilio TwiML, the dialer's simulator). A
transport performs the actions in order; every list of actions ends with the one that waits for the
citizen (:class:`CollectKeys`, :class:`Record`) or with :class:`HangUpCall`, and the event that wait
produced is handed back to :meth:`SurveyFlow.handle`.

The call::

    NEW ──Answered──▶ SATISFACTION ──1──▶ OFFER_COMMENT ──1──▶ RECORD_COMMENT ──▶ thanks, goodbye
                          │  ▲                 └── timeout / other key ─────────▶ thanks, goodbye
                          2  └─ low-confidence speech: CONFIRM_SATISFACTION
                          ▼
                       REASONS ──digits#──▶ (reason 9: RECORD_COMMENT) else OFFER_COMMENT
                          └─ low-confidence speech: CONFIRM_REASONS

    any question: * repeats it; 0 asks CONFIRM_OPT_OUT (1 confirms, anything else returns);
    a timeout or an invalid key re-prompts ``max_retries`` times, then the call ends politely;
    a hang-up ends the flow where it stands and keeps what was answered.

Events, actions and prompts are defined in :mod:`callcenter.ivr.messages` and re-exported here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from callcenter.asr.understand import match_answer, number_phrases
from callcenter.core.outcomes import SurveyOutcome
from callcenter.ivr.messages import (
    Action,
    Answered,
    AnswerMatcher,
    CallContext,
    CollectKeys,
    Event,
    HangUp,
    HangUpCall,
    Keys,
    MatchLike,
    Play,
    Prompt,
    Record,
    RecordingDone,
    Speech,
    Timeout,
    Utterance,
)
from callcenter.ivr.questionnaire import Questionnaire, Reason
from callcenter.ivr.speech_text import date_words

__all__ = [
    "QUESTION_STATES",
    "Action",
    "AnswerMatcher",
    "Answered",
    "CallContext",
    "CollectKeys",
    "Event",
    "FlowState",
    "HangUp",
    "HangUpCall",
    "Keys",
    "MatchLike",
    "Play",
    "Prompt",
    "Record",
    "RecordingDone",
    "Speech",
    "SurveyFlow",
    "SurveyResult",
    "Timeout",
    "Utterance",
]

# ---------------------------------------------------------------------------------------------------
# State and result


class FlowState(enum.StrEnum):
    NEW = "new"
    SATISFACTION = "satisfaction"
    CONFIRM_SATISFACTION = "confirm_satisfaction"
    REASONS = "reasons"
    CONFIRM_REASONS = "confirm_reasons"
    OFFER_COMMENT = "offer_comment"
    RECORD_COMMENT = "record_comment"
    CONFIRM_OPT_OUT = "confirm_opt_out"
    ENDED = "ended"


QUESTION_STATES = frozenset(
    {FlowState.SATISFACTION, FlowState.REASONS, FlowState.OFFER_COMMENT, FlowState.RECORD_COMMENT}
)


@dataclass
class SurveyResult:
    """What the citizen answered so far; stored after every change (``revision`` counts changes)."""

    questionnaire_version: str
    satisfied: bool | None = None
    reasons: dict[int, str] = field(default_factory=dict)  # reason code -> source (dtmf | speech)
    recording_ref: str | None = None
    recording_seconds: float = 0.0
    wants_comment: bool = False
    opted_out: bool = False
    via: set[str] = field(default_factory=set)  # dtmf, speech
    ended: bool = False
    end_reason: str | None = None  # completed | opted_out | no_input | hangup
    revision: int = 0

    @property
    def answered_via(self) -> str | None:
        if not self.via:
            return None
        return "mixed" if len(self.via) > 1 else next(iter(self.via))

    @property
    def complete(self) -> bool:
        """Satisfaction answered, and at least one reason if not satisfied."""
        return self.satisfied is True or (self.satisfied is False and bool(self.reasons))

    @property
    def outcome(self) -> SurveyOutcome:
        if self.opted_out:
            return SurveyOutcome.OPTED_OUT
        if self.complete:
            return SurveyOutcome.COMPLETED
        if self.satisfied is not None:
            return SurveyOutcome.PARTIAL
        return SurveyOutcome.NO_INPUT


class SurveyFlow:
    """One survey call. Build it per call; it holds no I/O and can be snapshotted (Twilio)."""

    def __init__(
        self,
        questionnaire: Questionnaire,
        context: CallContext,
        *,
        speech_enabled: bool = False,
        matcher: AnswerMatcher | None = None,
    ) -> None:
        self.q = questionnaire
        self.context = context
        self.speech_enabled = speech_enabled
        self.matcher: AnswerMatcher = matcher or match_answer
        self.state = FlowState.NEW
        self.result = SurveyResult(questionnaire_version=questionnaire.version)
        self.errors = 0  # timeouts and invalid answers at the current question
        self.repeats = 0
        self.keys_only = False  # speech refused once at this question: keys only now
        self.pending_satisfied: bool | None = None
        self.pending_reasons: tuple[int, ...] = ()
        self.resume_state: FlowState | None = None  # where to go back after a cancelled opt-out

    # ----------------------------------------------------------------------------------- public API

    def start(self) -> list[Action]:
        """The first actions once the call is answered (same as ``handle(Answered())``)."""
        return self.handle(Answered())

    @property
    def ended(self) -> bool:
        return self.state is FlowState.ENDED

    def handle(self, event: Event) -> list[Action]:
        """Advance on one event; returns what to do next (empty once the call is over)."""
        if self.state is FlowState.ENDED:
            return []
        if isinstance(event, HangUp):
            self._finish("hangup")
            return []
        if self.state is FlowState.NEW:
            if isinstance(event, Answered):
                return self._ask(FlowState.SATISFACTION, lead=self._greeting())
            return []
        if isinstance(event, Answered):
            return self._ask(self.state, fresh=False)  # a transport restating the obvious: ask again
        if isinstance(event, RecordingDone):
            return self._on_recording(event)
        if isinstance(event, Keys) and event.digits == "":
            event = Timeout()
        handler = {
            FlowState.SATISFACTION: self._on_satisfaction,
            FlowState.CONFIRM_SATISFACTION: self._on_confirm_satisfaction,
            FlowState.REASONS: self._on_reasons,
            FlowState.CONFIRM_REASONS: self._on_confirm_reasons,
            FlowState.OFFER_COMMENT: self._on_offer_comment,
            FlowState.CONFIRM_OPT_OUT: self._on_confirm_opt_out,
            FlowState.RECORD_COMMENT: self._on_record_input,
        }[self.state]
        return handler(event)

    # ------------------------------------------------------------------------------------ prompts

    def _say(self, name: str) -> Utterance:
        return Utterance(self.q.text(name), key=name)

    def _dynamic(self, text: str) -> Utterance:
        return Utterance(text)

    def _greeting(self) -> Prompt:
        ctx = self.context
        if ctx.returned_on is not None:
            dossier = self.q.text(
                "dossier",
                field=ctx.field_name,
                agency=ctx.agency_name,
                returned_date=date_words(ctx.returned_on),
            )
        else:
            dossier = self.q.text("dossier_no_date", field=ctx.field_name, agency=ctx.agency_name)
        return (self._say("greeting"), self._dynamic(dossier))

    def _speech_on(self) -> bool:
        return self.speech_enabled and not self.keys_only

    def _reason_options(self) -> Prompt:
        return tuple(
            Utterance(self.q.text("reason_option", key=r.key, label=r.label), key=f"reason_option_{r.code}")
            for r in self.q.keyed_reasons
        )

    def _question(self, state: FlowState) -> Action:
        t = self.q.timing
        speech = self._speech_on()
        if state is FlowState.SATISFACTION:
            prompt: Prompt = (self._say("ask_satisfaction"),)
            if speech:
                prompt += (self._say("ask_satisfaction_speech"),)
            phrases = self.q.speech.satisfied + self.q.speech.unsatisfied
            return CollectKeys(prompt, 1, t.answer_timeout_seconds, None, phrases if speech else None)
        if state is FlowState.CONFIRM_SATISFACTION:
            name = "confirm_satisfied" if self.pending_satisfied else "confirm_unsatisfied"
            phrases = self.q.speech.confirm + self.q.speech.deny
            return CollectKeys(
                (self._say(name),), 1, t.answer_timeout_seconds, None, phrases if speech else None
            )
        if state is FlowState.REASONS:
            prompt = (self._say("ask_reasons_intro"), *self._reason_options())
            if speech:
                prompt += (self._say("ask_reasons_speech"),)
            phrases = tuple(p for forms in self._reason_choices().values() for p in forms)
            return CollectKeys(
                prompt,
                max(1, len(self.q.keyed_reasons)),
                t.reasons_timeout_seconds,
                self.q.keys.finish,
                phrases if speech else None,
            )
        if state is FlowState.CONFIRM_REASONS:
            labels = ", ".join(self._reason(code).label for code in self.pending_reasons)
            phrases = self.q.speech.confirm + self.q.speech.deny
            return CollectKeys(
                (self._dynamic(self.q.text("confirm_reasons", labels=labels)),),
                1,
                t.answer_timeout_seconds,
                None,
                phrases if speech else None,
            )
        if state is FlowState.OFFER_COMMENT:
            phrases = self.q.speech.comment + self.q.speech.confirm + self.q.speech.deny
            return CollectKeys(
                (self._say("offer_comment"),), 1, t.answer_timeout_seconds, None, phrases if speech else None
            )
        if state is FlowState.CONFIRM_OPT_OUT:
            phrases = self.q.speech.confirm + self.q.speech.deny
            return CollectKeys(
                (self._say("ask_opt_out"),), 1, t.answer_timeout_seconds, None, phrases if speech else None
            )
        if state is FlowState.RECORD_COMMENT:
            other = any(self._reason(code).records_comment for code in self.result.reasons)
            name = "record_other_reason" if other and not self.result.wants_comment else "record_comment"
            return Record(
                (self._say(name),), t.comment_max_seconds, self.q.keys.finish, t.comment_silence_seconds
            )
        raise AssertionError(f"no question in state {state}")

    def _ask(self, state: FlowState, *, lead: Prompt = (), fresh: bool = True) -> list[Action]:
        """Move to ``state`` and ask its question, after ``lead`` (apology, greeting…)."""
        if fresh:
            self.errors = 0
            self.repeats = 0
            if state is not self.state:
                self.keys_only = False
        self.state = state
        action = self._question(state)
        if isinstance(action, CollectKeys | Record):
            action = replace(action, prompt=lead + action.prompt)
        return [action]

    def _ask_keys_only(self, state: FlowState) -> list[Action]:
        """Speech was unclear once at this question: ask it again, accepting keys only."""
        self.errors = 0
        self.repeats = 0
        self.keys_only = True
        self.state = state
        return self._ask(state, lead=(self._say("not_understood"),), fresh=False)

    # ------------------------------------------------------------------------------------ common

    def _touch(self) -> None:
        self.result.revision += 1

    def _finish(self, reason: str) -> None:
        self.state = FlowState.ENDED
        self.result.ended = True
        self.result.end_reason = reason
        self._touch()

    def _goodbye(self) -> list[Action]:
        self._finish("completed")
        return [Play((self._say("thanks"), self._say("goodbye"))), HangUpCall("completed")]

    def _retry(self, lead_name: str) -> list[Action]:
        """A timeout or invalid answer: re-prompt up to ``max_retries`` times, then end politely."""
        self.errors += 1
        if self.errors > self.q.timing.max_retries:
            reason = "completed" if self.result.complete else "no_input"
            self._finish(reason)
            return [Play((self._say("ended_no_input"),)), HangUpCall(reason)]
        return self._ask(self.state, lead=(self._say(lead_name),), fresh=False)

    def _common_keys(self, digits: str) -> list[Action] | None:
        """``*`` repeats the question, ``0`` asks to opt out; None when neither applies."""
        keys = self.q.keys
        if digits.startswith(keys.repeat):
            self.repeats += 1
            if self.repeats > self.q.timing.max_repeats:
                return self._retry("invalid_key")
            return self._ask(self.state, fresh=False)
        if digits == keys.opt_out and self.state is not FlowState.CONFIRM_OPT_OUT:
            self.resume_state = self.state
            return self._ask(FlowState.CONFIRM_OPT_OUT)
        return None

    def _match(
        self, text: str, choices: Mapping[str, Sequence[str]], confidence: float
    ) -> tuple[str | None, float]:
        match = self.matcher(text, choices)
        return match.choice, min(confidence, match.confidence)

    def _reason(self, code: int) -> Reason:
        reason = self.q.reason_by_code(code)
        if reason is None:  # the questionnaire validated every code we can produce
            raise AssertionError(f"unknown reason code {code}")
        return reason

    def _low(self, confidence: float) -> bool:
        return confidence < self.q.speech.min_confidence

    # ------------------------------------------------------------------------------------ states

    def _on_satisfaction(self, event: Event) -> list[Action]:
        keys = self.q.keys
        if isinstance(event, Timeout):
            return self._retry("no_input")
        if isinstance(event, Keys):
            common = self._common_keys(event.digits)
            if common is not None:
                return common
            if event.digits in (keys.satisfied, keys.unsatisfied):
                return self._set_satisfied(event.digits == keys.satisfied, "dtmf")
            return self._retry("invalid_key")
        if isinstance(event, Speech) and self._speech_on():
            choices = {"satisfied": self.q.speech.satisfied, "unsatisfied": self.q.speech.unsatisfied}
            choice, confidence = self._match(event.transcript, choices, event.confidence)
            if choice is None:
                return self._retry("not_understood")
            if self._low(confidence):
                self.pending_satisfied = choice == "satisfied"
                return self._ask(FlowState.CONFIRM_SATISFACTION)
            return self._set_satisfied(choice == "satisfied", "speech")
        return self._retry("invalid_key")

    def _set_satisfied(self, satisfied: bool, source: str) -> list[Action]:
        self.result.satisfied = satisfied
        self.result.via.add(source)
        self._touch()
        return self._ask(FlowState.OFFER_COMMENT if satisfied else FlowState.REASONS)

    def _confirmation(self, event: Event) -> bool | None:
        """True/False for a clear yes/no (key or speech), None for anything else."""
        keys = self.q.keys
        if isinstance(event, Keys):
            if event.digits == keys.confirm:
                return True
            if event.digits == keys.deny:
                return False
            return None
        if isinstance(event, Speech) and self._speech_on():
            choices = {"yes": self.q.speech.confirm, "no": self.q.speech.deny}
            choice, confidence = self._match(event.transcript, choices, event.confidence)
            # A confirmation commits an answer (or an opt-out for good): an unsure one is no answer.
            # "dạ" alone is a clear yes; "dạ sao ạ", "dạ alo" or "ừ để tôi nghĩ" are not.
            if choice is None or self._low(confidence):
                return None
            return choice == "yes"
        return None

    def _on_confirm_satisfaction(self, event: Event) -> list[Action]:
        if isinstance(event, Keys) and event.digits.startswith(self.q.keys.repeat):
            return self._ask(self.state, fresh=False)
        answer = self._confirmation(event)
        if answer is True and self.pending_satisfied is not None:
            return self._set_satisfied(self.pending_satisfied, "speech")
        # Denied or unclear: ask the question again, keys only (speech was tried once).
        self.pending_satisfied = None
        return self._ask_keys_only(FlowState.SATISFACTION)

    def _parse_reason_digits(self, digits: str) -> tuple[int, ...] | None:
        codes: list[int] = []
        for digit in digits:
            reason = self.q.reason_by_key(digit)
            if reason is None:
                return None
            if reason.code not in codes:
                codes.append(reason.code)
        return tuple(codes)

    def _on_reasons(self, event: Event) -> list[Action]:
        if isinstance(event, Timeout):
            return self._retry("no_input")
        if isinstance(event, Keys):
            common = self._common_keys(event.digits)
            if common is not None:
                return common
            codes = self._parse_reason_digits(event.digits.rstrip(self.q.keys.finish))
            if not codes:
                return self._retry("invalid_key")
            return self._set_reasons(codes, "dtmf")
        if isinstance(event, Speech) and self._speech_on():
            match = self.matcher(event.transcript, self._reason_choices())
            # Several reasons may be said at once ("hai và bốn"); a matcher that knows only one
            # choice at a time still works.
            said = tuple(getattr(match, "choices", ()) or ((match.choice,) if match.choice else ()))
            codes = tuple(dict.fromkeys(int(c) for c in said))
            if not codes:
                return self._retry("not_understood")
            if self._low(min(event.confidence, match.confidence)):
                self.pending_reasons = codes
                return self._ask(FlowState.CONFIRM_REASONS)
            return self._set_reasons(codes, "speech")
        return self._retry("invalid_key")

    def _set_reasons(self, codes: tuple[int, ...], source: str) -> list[Action]:
        for code in codes:
            self.result.reasons.setdefault(code, source)
        self.result.via.add(source)
        self._touch()
        if any(self._reason(code).records_comment for code in codes):
            return self._ask(FlowState.RECORD_COMMENT)
        return self._ask(FlowState.OFFER_COMMENT)

    def _reason_choices(self) -> dict[str, tuple[str, ...]]:
        """Spoken forms of each reason: its label, its phrases, and its key as a number ("số hai")."""
        return {
            str(r.code): (r.label, *r.phrases, *(number_phrases(int(r.key)) if r.key else ()))
            for r in self.q.reasons
        }

    def _on_confirm_reasons(self, event: Event) -> list[Action]:
        if isinstance(event, Keys) and event.digits.startswith(self.q.keys.repeat):
            return self._ask(self.state, fresh=False)
        answer = self._confirmation(event)
        pending, self.pending_reasons = self.pending_reasons, ()
        if answer is True and pending:
            return self._set_reasons(pending, "speech")
        return self._ask_keys_only(FlowState.REASONS)

    def _on_offer_comment(self, event: Event) -> list[Action]:
        # The comment is optional: silence or another key means "no, thank you".
        if isinstance(event, Keys):
            common = self._common_keys(event.digits)
            if common is not None:
                return common
            if event.digits == self.q.keys.comment:
                return self._want_comment()
            return self._goodbye()
        if isinstance(event, Speech) and self._speech_on():
            choices = {"yes": self.q.speech.comment + self.q.speech.confirm, "no": self.q.speech.deny}
            choice, confidence = self._match(event.transcript, choices, event.confidence)
            if choice == "yes" and not self._low(confidence):
                return self._want_comment()
        return self._goodbye()

    def _want_comment(self) -> list[Action]:
        self.result.wants_comment = True  # not a stored field: no save needed
        return self._ask(FlowState.RECORD_COMMENT)

    def _on_record_input(self, event: Event) -> list[Action]:
        # A transport reports a recording with RecordingDone; anything else during it ends the call.
        return self._goodbye()

    def _on_recording(self, event: RecordingDone) -> list[Action]:
        if self.state is not FlowState.RECORD_COMMENT:
            return self._ask(self.state, fresh=False)  # no recording was asked for: ask again
        if event.ref and event.duration_seconds > 0:
            self.result.recording_ref = event.ref
            self.result.recording_seconds = event.duration_seconds
            self._touch()
        if event.ended_by == "hangup":
            self._finish("hangup")
            return []
        return self._goodbye()

    def _on_confirm_opt_out(self, event: Event) -> list[Action]:
        if isinstance(event, Keys) and event.digits.startswith(self.q.keys.repeat):
            return self._ask(self.state, fresh=False)
        answer = self._confirmation(event)
        if answer is True:
            self.result.opted_out = True
            self._finish("opted_out")
            return [Play((self._say("opted_out"), self._say("goodbye"))), HangUpCall("opted_out")]
        resume = self.resume_state or FlowState.SATISFACTION
        self.resume_state = None
        return self._ask(resume)

    # ------------------------------------------------------------------------------- snapshots

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able picture of the flow, for transports that keep no process per call (Twilio)."""
        r = self.result
        return {
            "v": self.q.version,
            "s": self.state.value,
            "e": self.errors,
            "rp": self.repeats,
            "ko": self.keys_only,
            "ps": self.pending_satisfied,
            "pr": list(self.pending_reasons),
            "rs": self.resume_state.value if self.resume_state else None,
            "sat": r.satisfied,
            "rea": {str(k): v for k, v in r.reasons.items()},
            "rec": r.recording_ref,
            "recs": r.recording_seconds,
            "wc": r.wants_comment,
            "oo": r.opted_out,
            "via": sorted(r.via),
            "end": r.end_reason,
            "rev": r.revision,
        }

    @classmethod
    def restore(
        cls,
        questionnaire: Questionnaire,
        context: CallContext,
        snapshot: Mapping[str, Any],
        *,
        speech_enabled: bool = False,
        matcher: AnswerMatcher | None = None,
    ) -> SurveyFlow:
        """Rebuild a flow from :meth:`snapshot`; refuses a snapshot of another questionnaire version."""
        if snapshot.get("v") != questionnaire.version:
            raise ValueError(
                f"flow snapshot is for questionnaire {snapshot.get('v')!r}, not {questionnaire.version!r}"
            )
        flow = cls(questionnaire, context, speech_enabled=speech_enabled, matcher=matcher)
        flow.state = FlowState(snapshot["s"])
        flow.errors = int(snapshot["e"])
        flow.repeats = int(snapshot["rp"])
        flow.keys_only = bool(snapshot["ko"])
        flow.pending_satisfied = snapshot["ps"]
        flow.pending_reasons = tuple(int(c) for c in snapshot["pr"])
        flow.resume_state = FlowState(snapshot["rs"]) if snapshot["rs"] else None
        r = flow.result
        r.satisfied = snapshot["sat"]
        r.reasons = {int(k): str(v) for k, v in snapshot["rea"].items()}
        r.recording_ref = snapshot["rec"]
        r.recording_seconds = float(snapshot["recs"])
        r.wants_comment = bool(snapshot["wc"])
        r.opted_out = bool(snapshot["oo"])
        r.via = set(snapshot["via"])
        r.end_reason = snapshot["end"]
        r.ended = flow.state is FlowState.ENDED
        r.revision = int(snapshot["rev"])
        return flow

    def current_question(self) -> list[Action]:
        """The current question again, as if ``*`` was pressed (Twilio re-entry after a redirect)."""
        if self.state in (FlowState.NEW, FlowState.ENDED):
            return []
        return self._ask(self.state, fresh=False)
