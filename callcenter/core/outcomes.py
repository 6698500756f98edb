"""Shared vocabulary of call and survey outcomes, used by the dialer, campaigns and analysis."""

from __future__ import annotations

import enum


class CallOutcome(enum.StrEnum):
    """How one call attempt ended on the network side (mapped from Q.850, AMI and Twilio)."""

    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    REJECTED = "rejected"
    INVALID_NUMBER = "invalid_number"
    CONGESTION = "congestion"
    FAILED = "failed"
    MACHINE = "machine"  # answering machine / voicemail
    DROPPED = "dropped"  # answered, then cut before the survey finished


class SurveyOutcome(enum.StrEnum):
    """What an answered call yielded for the survey."""

    COMPLETED = "completed"  # satisfaction answered (and reasons, if unsatisfied)
    PARTIAL = "partial"  # hung up midway; answers so far are kept
    OPTED_OUT = "opted_out"  # pressed 0 and confirmed: never call again
    NO_INPUT = "no_input"  # answered but never gave a usable answer
    NONE = "none"  # not answered
