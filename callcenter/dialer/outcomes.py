"""Every network-side signal a trunk gives, mapped to a :class:`CallOutcome` in one place.

Pure functions, no I/O. Three vocabularies meet here:

* **Q.850 cause codes** (``Hangup`` event ``Cause``, SIP trunks' reason headers);
* **AMI ``OriginateResponse`` reasons** (Asterisk's ``AST_CONTROL_*`` numbers: 0 failed, 1 hung up
  before answer, 3 rang until the Originate timeout, 4 answered, 5 busy, 8 congestion) helped by the
  ``DialEnd`` ``DialStatus``;
* **Twilio call statuses** (``completed``, ``busy``, ``no-answer``, ``failed``, ``canceled``) and
  ``AnsweredBy`` from answering-machine detection.

Busy and no-answer are outcomes, not errors: the campaign's retry rules decide what happens next.
"""

from __future__ import annotations

from dataclasses import dataclass

from callcenter.core.outcomes import CallOutcome

# --- Q.850 -------------------------------------------------------------------------------------------

Q850_NORMAL_CLEARING = 16
# Causes that end an answered call normally (someone hung up): 0 is what Asterisk reports when the
# robot itself hung up through AGI (see the fixtures README), 31 is "normal, unspecified".
NORMAL_CLEARING_CAUSES = frozenset({0, 16, 31})

Q850_OUTCOMES: dict[int, CallOutcome] = {
    1: CallOutcome.INVALID_NUMBER,  # unallocated (unassigned) number
    2: CallOutcome.INVALID_NUMBER,  # no route to specified transit network
    3: CallOutcome.INVALID_NUMBER,  # no route to destination
    17: CallOutcome.BUSY,  # user busy
    18: CallOutcome.NO_ANSWER,  # no user responding (phone off, out of coverage)
    19: CallOutcome.NO_ANSWER,  # user alerting, no answer
    20: CallOutcome.NO_ANSWER,  # subscriber absent
    21: CallOutcome.REJECTED,  # call rejected (the citizen declined it)
    22: CallOutcome.INVALID_NUMBER,  # number changed
    27: CallOutcome.FAILED,  # destination out of order
    28: CallOutcome.INVALID_NUMBER,  # invalid number format (incomplete number)
    29: CallOutcome.FAILED,  # facility rejected
    34: CallOutcome.CONGESTION,  # no circuit/channel available
    38: CallOutcome.CONGESTION,  # network out of order
    41: CallOutcome.CONGESTION,  # temporary failure
    42: CallOutcome.CONGESTION,  # switching equipment congestion
    44: CallOutcome.CONGESTION,  # requested circuit/channel not available
    47: CallOutcome.CONGESTION,  # resource unavailable, unspecified
    50: CallOutcome.FAILED,  # requested facility not subscribed
    55: CallOutcome.FAILED,  # incoming calls barred within CUG
    57: CallOutcome.FAILED,  # bearer capability not authorized
    58: CallOutcome.FAILED,  # bearer capability not presently available
    65: CallOutcome.FAILED,  # bearer capability not implemented
    79: CallOutcome.FAILED,  # service or option not implemented
    88: CallOutcome.FAILED,  # incompatible destination
    102: CallOutcome.NO_ANSWER,  # recovery on timer expiry
    111: CallOutcome.FAILED,  # protocol error, unspecified
    127: CallOutcome.FAILED,  # interworking, unspecified
}


def outcome_for_cause(cause: int | None) -> CallOutcome | None:
    """The outcome a Q.850 cause of an *unanswered* call means, or None when it says nothing (0, 16)."""
    if cause is None or cause in NORMAL_CLEARING_CAUSES:
        return None
    return Q850_OUTCOMES.get(cause, CallOutcome.FAILED)


def outcome_after_answer(cause: int | None) -> CallOutcome:
    """An answered call stays ANSWERED when it was cleared normally; a network cut makes it DROPPED."""
    if cause is None or cause in NORMAL_CLEARING_CAUSES or cause in (17, 18, 19, 21):
        return CallOutcome.ANSWERED
    return CallOutcome.DROPPED


# --- AMI ---------------------------------------------------------------------------------------------

ORIGINATE_FAILED = 0
ORIGINATE_HANGUP = 1
ORIGINATE_RING_TIMEOUT = 3
ORIGINATE_ANSWERED = 4
ORIGINATE_BUSY = 5
ORIGINATE_CONGESTION = 8

_DIAL_STATUS: dict[str, CallOutcome] = {
    "ANSWER": CallOutcome.ANSWERED,
    "BUSY": CallOutcome.BUSY,
    "NOANSWER": CallOutcome.NO_ANSWER,
    "CANCEL": CallOutcome.NO_ANSWER,  # the caller side gave up while it rang
    "CONGESTION": CallOutcome.CONGESTION,
    "CHANUNAVAIL": CallOutcome.FAILED,
    "DONTCALL": CallOutcome.REJECTED,
    "TORTURE": CallOutcome.REJECTED,
    "INVALIDARGS": CallOutcome.FAILED,
}


def outcome_for_dial_status(status: str | None) -> CallOutcome | None:
    """``DialEnd``/``Dial()`` ``DialStatus`` → outcome (None when absent or unknown)."""
    if not status:
        return None
    return _DIAL_STATUS.get(status.strip().upper())


@dataclass(frozen=True, slots=True)
class AmiCallFacts:
    """What the AMI told about one originated call, gathered from its events in any order."""

    originate_reason: int | None  # OriginateResponse Reason; None if it never came
    dial_began: bool  # a DialBegin (or DialState) was seen: the call really went out
    dial_status: str | None  # the DialEnd DialStatus, if any
    answered: bool  # some half reached state Up (Newstate 6) or DialEnd said ANSWER
    causes: tuple[int, ...]  # Hangup causes of every half of the call, in arrival order


def classify_ami(facts: AmiCallFacts) -> tuple[CallOutcome, int | None]:
    """Map one finished AMI call to its outcome and the most telling Q.850 cause.

    The cause returned is the first non-zero, non-normal cause of any half: with ``Local/``
    channels only the ``;2`` half carries 17 (busy) or 34 (congestion); on a SIP trunk the
    originated channel carries it itself.
    """
    telling = next((c for c in facts.causes if c not in NORMAL_CLEARING_CAUSES), None)
    cause = telling if telling is not None else (facts.causes[-1] if facts.causes else None)
    reason = facts.originate_reason

    if reason == ORIGINATE_ANSWERED or facts.answered:
        return outcome_after_answer(telling), cause
    if reason == ORIGINATE_BUSY:
        return CallOutcome.BUSY, cause
    if reason == ORIGINATE_CONGESTION:
        return CallOutcome.CONGESTION, cause
    if reason == ORIGINATE_RING_TIMEOUT:
        return CallOutcome.NO_ANSWER, cause
    # Reason 0 (or 1, or none at all) is ambiguous: the dial status and the causes decide.
    by_dial = outcome_for_dial_status(facts.dial_status)
    if by_dial is not None:
        return by_dial, cause
    by_cause = outcome_for_cause(telling)
    if by_cause is not None:
        return by_cause, cause
    if reason == ORIGINATE_HANGUP:
        # Hung up before answer without a telling cause: the far end declined the call.
        return CallOutcome.REJECTED, cause
    if reason == ORIGINATE_FAILED and not facts.dial_began and facts.causes:
        # Channels were created but never dialled anything: the dialplan had no such extension
        # (Local channels give cause 0/0 here; a SIP trunk would say 1 or 28, handled above).
        return CallOutcome.INVALID_NUMBER, cause
    return CallOutcome.FAILED, cause


# --- Twilio ------------------------------------------------------------------------------------------

TWILIO_FINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
TWILIO_PROGRESS_STATUSES = frozenset({"queued", "initiated", "ringing", "in-progress"})
_MACHINE_ANSWERED_BY = frozenset(
    {"machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax"}
)


def twilio_is_final(status: str) -> bool:
    return status.strip().lower() in TWILIO_FINAL_STATUSES


def classify_twilio(
    status: str, *, answered_by: str | None = None, sip_response_code: int | None = None
) -> CallOutcome:
    """Twilio ``CallStatus`` (+ ``AnsweredBy`` and ``SipResponseCode`` when given) → outcome."""
    status = status.strip().lower()
    if answered_by and answered_by.strip().lower() in _MACHINE_ANSWERED_BY:
        return CallOutcome.MACHINE
    if status in ("completed", "in-progress"):
        return CallOutcome.ANSWERED
    if status == "busy":
        return CallOutcome.BUSY
    if status in ("no-answer", "canceled"):
        return CallOutcome.NO_ANSWER
    if status == "failed":
        if sip_response_code in (404, 484, 604):
            return CallOutcome.INVALID_NUMBER
        if sip_response_code in (403, 603):
            return CallOutcome.REJECTED
        if sip_response_code in (480, 503):
            return CallOutcome.CONGESTION
        return CallOutcome.FAILED
    raise ValueError(f"unknown Twilio CallStatus {status!r}")
